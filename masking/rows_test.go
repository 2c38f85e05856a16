package masking

import (
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// dataRow builds a DataRow body; a nil column is NULL.
func dataRow(cols ...[]byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(cols)))
	for _, c := range cols {
		if c == nil {
			b = binary.BigEndian.AppendUint32(b, 0xFFFFFFFF)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}

// parseDataRow splits a DataRow body into its columns (nil = NULL).
func parseDataRow(t testing.TB, body []byte) [][]byte {
	t.Helper()
	if len(body) < 2 {
		t.Fatalf("body too short: %x", body)
	}
	n := int(binary.BigEndian.Uint16(body))
	cols := make([][]byte, 0, n)
	p := 2
	for range n {
		v, next, err := nextColumn(body, p)
		if err != nil {
			t.Fatalf("output row is malformed: %v (%x)", err, body)
		}
		cols = append(cols, v)
		p = next
	}
	if p != len(body) {
		t.Fatalf("output row has %d trailing bytes", len(body)-p)
	}
	return cols
}

func exactOut(name string) Output { return Output{Name: name} }

func TestNewRowMaskerNilWhenNothingMasked(t *testing.T) {
	if r := NewRowMasker([]Output{exactOut("a"), exactOut("b")}, []uint32{23, 25}, nil, nil); r != nil {
		t.Fatal("a result without masked columns got a RowMasker")
	}
	if r := NewRowMasker(nil, nil, nil, nil); r != nil {
		t.Fatal("an empty result got a RowMasker")
	}
	if r := NewRowMasker([]Output{exactOut("a"), derivedOut()}, nil, nil, nil); r == nil {
		t.Fatal("a result with a masked column got no RowMasker")
	}
}

func TestNilRowMaskerPassesThrough(t *testing.T) {
	var r *RowMasker
	body := dataRow([]byte("a"), nil)
	if got, err := r.MaskDataRow([]byte("x"), body); err != nil || string(got) != "x"+string(body) {
		t.Fatalf("nil MaskDataRow gave %q, %v", got, err)
	}
	r.ResetCopy()
	if got, err := r.MaskCopyLine(nil, []byte("a\tb\n"), &textCopy); err != nil || string(got) != "a\tb\n" {
		t.Fatalf("nil MaskCopyLine gave %q, %v", got, err)
	}
}

func TestMaskDataRowTextFormat(t *testing.T) {
	outs := []Output{exactOut("id"), plainOut(t, "email"), plainOut(t, "partial:1,1"), derivedOut()}
	oids := []uint32{pgtype.Int4OID, pgtype.TextOID, pgtype.VarcharOID, pgtype.Int8OID}
	r := NewRowMasker(outs, oids, nil, testKey)
	body := dataRow([]byte("42"), []byte("alice@example.com"), []byte("Smith"), []byte("17"))
	got, err := r.MaskDataRow([]byte("hdr"), body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("hdr")) {
		t.Fatalf("dst prefix lost: %q", got)
	}
	cols := parseDataRow(t, got[3:])
	want := []string{"42", "***@example.com", "S***h"}
	for i, w := range want {
		if string(cols[i]) != w {
			t.Errorf("column %d: got %q, want %q", i, cols[i], w)
		}
	}
	if cols[3] != nil {
		t.Errorf("derived int8 column: got %q, want NULL", cols[3])
	}
}

func TestMaskDataRowNulls(t *testing.T) {
	outs := []Output{plainOut(t, "redact"), exactOut("b"), plainOut(t, "blank")}
	r := NewRowMasker(outs, []uint32{pgtype.TextOID, pgtype.TextOID, pgtype.TextOID}, nil, nil)
	got, err := r.MaskDataRow(nil, dataRow(nil, nil, []byte{}))
	if err != nil {
		t.Fatal(err)
	}
	cols := parseDataRow(t, got)
	if cols[0] != nil || cols[1] != nil {
		t.Errorf("NULL columns came back as %q, %q", cols[0], cols[1])
	}
	if cols[2] == nil || len(cols[2]) != 0 {
		t.Errorf("empty blank column came back as %v", cols[2])
	}
}

// TestMaskDataRowBinaryDecodes masks a binary row built with pgx and
// decodes every column with pgx, proving the values fit their types.
func TestMaskDataRowBinaryDecodes(t *testing.T) {
	tm := pgtype.NewMap()
	birth := time.Date(1985, 3, 4, 0, 0, 0, 0, time.UTC)
	seen := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	outs := []Output{exactOut("id"), plainOut(t, "partial:2,0"), plainOut(t, "generalize:year"),
		plainOut(t, "generalize:month"), plainOut(t, "redact"), plainOut(t, "redact"), derivedOut()}
	oids := []uint32{pgtype.Int4OID, pgtype.TextOID, pgtype.DateOID, pgtype.TimestamptzOID,
		pgtype.JSONBOID, pgtype.Int4OID, pgtype.TextOID}
	body := dataRow(
		encodeBinary(t, pgtype.Int4OID, int32(7)),
		encodeBinary(t, pgtype.TextOID, "Zoë"),
		encodeBinary(t, pgtype.DateOID, birth),
		encodeBinary(t, pgtype.TimestamptzOID, seen),
		encodeBinary(t, pgtype.JSONBOID, map[string]any{"ssn": "123"}),
		encodeBinary(t, pgtype.Int4OID, int32(99)),
		encodeBinary(t, pgtype.TextOID, "lower"),
	)
	r := NewRowMasker(outs, oids, []int16{1}, nil)
	got, err := r.MaskDataRow(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	cols := parseDataRow(t, got)
	var id int32
	var name, derived string
	var d, ts time.Time
	var doc any
	scan := []struct {
		dst  any
		want any
	}{{&id, int32(7)}, {&name, "Zo*"}, {&d, utcDate(1985, 1, 1)}, {&ts, utcDate(2024, 5, 1)}, {&doc, "***"}}
	for i, s := range scan {
		if err := tm.Scan(oids[i], 1, cols[i], s.dst); err != nil {
			t.Fatalf("column %d: pgx cannot decode %x: %v", i, cols[i], err)
		}
	}
	if id != 7 || name != "Zo*" || !d.Equal(utcDate(1985, 1, 1)) || !ts.Equal(utcDate(2024, 5, 1)) || doc != "***" {
		t.Errorf("decoded %v %q %v %v %v", id, name, d, ts, doc)
	}
	if cols[5] != nil {
		t.Errorf("redacted int4 gave %x, want NULL", cols[5])
	}
	if err := tm.Scan(pgtype.TextOID, 1, cols[6], &derived); err != nil || derived != "***" {
		t.Errorf("derived text gave %q, %v", derived, err)
	}
}

func TestMaskDataRowFormats(t *testing.T) {
	outs := []Output{plainOut(t, "redact"), plainOut(t, "generalize:year")}
	oids := []uint32{pgtype.TextOID, pgtype.DateOID}
	textRow := dataRow([]byte("x"), []byte("1985-03-04"))
	binRow := dataRow([]byte("x"), encodeBinary(t, pgtype.DateOID, utcDate(1985, 3, 4)))
	cases := []struct {
		formats []int16
		body    []byte
		want    []byte // column 1
	}{
		{nil, textRow, []byte("1985-01-01")},
		{[]int16{0}, textRow, []byte("1985-01-01")},
		{[]int16{1}, binRow, encodeBinary(t, pgtype.DateOID, utcDate(1985, 1, 1))},
		{[]int16{0, 1}, binRow, encodeBinary(t, pgtype.DateOID, utcDate(1985, 1, 1))},
		{[]int16{1, 0}, textRow, []byte("1985-01-01")},
		{[]int16{0, 1, 1}, binRow, encodeBinary(t, pgtype.DateOID, utcDate(1985, 1, 1))},
		{[]int16{0, 0}[:1:1], textRow, []byte("1985-01-01")},
	}
	for i, c := range cases {
		got, err := NewRowMasker(outs, oids, c.formats, nil).MaskDataRow(nil, c.body)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		cols := parseDataRow(t, got)
		if string(cols[0]) != "***" || !bytes.Equal(cols[1], c.want) {
			t.Errorf("case %d formats %v: got %q %x", i, c.formats, cols[0], cols[1])
		}
	}
	// Three formats for two columns of which one is missing: NULL, not a guess.
	short := NewRowMasker(append(outs, plainOut(t, "redact")), append(oids, pgtype.TextOID), []int16{0, 0}, nil)
	got, err := short.MaskDataRow(nil, dataRow([]byte("x"), []byte("1985-03-04"), []byte("y")))
	if err != nil || parseDataRow(t, got)[2] != nil {
		t.Errorf("column without a format: got %x, %v", got, err)
	}
}

func TestMaskDataRowMalformed(t *testing.T) {
	r := NewRowMasker([]Output{exactOut("a"), plainOut(t, "redact")}, []uint32{25, 25}, nil, nil)
	good := dataRow([]byte("a"), []byte("b"))
	cases := []struct {
		name string
		body []byte
		want error
	}{
		{"empty", nil, errRowShort},
		{"one byte", []byte{0}, errRowShort},
		{"count too small", dataRow([]byte("a")), errRowCount},
		{"count too large", dataRow([]byte("a"), []byte("b"), []byte("c")), errRowCount},
		{"negative count", []byte{0xff, 0xfe}, errRowCount},
		{"truncated length", good[:8], errRowShort},
		{"length past end", good[:len(good)-1], errRowShort},
		{"length -2", append(dataRow([]byte("a"), nil)[:7], 0xff, 0xff, 0xff, 0xfe), errRowLength},
		{"trailing bytes", append(append([]byte{}, good...), 0), errRowTrailing},
		{"huge length", append(dataRow([]byte("a"), nil)[:7], 0x7f, 0xff, 0xff, 0xff), errRowShort},
	}
	for _, c := range cases {
		got, err := r.MaskDataRow([]byte("keep"), c.body)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got error %v, want %v", c.name, err, c.want)
		}
		if string(got) != "keep" {
			t.Errorf("%s: dst not restored: %q", c.name, got)
		}
	}
}

func TestMaskDataRowDoesNotAllocate(t *testing.T) {
	r := NewRowMasker([]Output{exactOut("id"), plainOut(t, "partial:2,2"), exactOut("n")},
		[]uint32{pgtype.Int4OID, pgtype.TextOID, pgtype.TextOID}, nil, testKey)
	body := dataRow([]byte("12345"), []byte("alice@example.com"), []byte("note"))
	dst := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		var err error
		if dst, err = r.MaskDataRow(dst[:0], body); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("MaskDataRow: %v allocations per row", allocs)
	}
}

func BenchmarkMaskDataRow(b *testing.B) {
	r := NewRowMasker([]Output{exactOut("id"), plainOut(b, "redact"), exactOut("n")},
		[]uint32{pgtype.Int4OID, pgtype.TextOID, pgtype.TextOID}, nil, nil)
	body := dataRow([]byte("12345"), []byte("alice@example.com"), []byte("a note"))
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		dst, _ = r.MaskDataRow(dst[:0], body)
	}
}

func BenchmarkMaskDataRowPartial(b *testing.B) {
	r := NewRowMasker([]Output{exactOut("id"), plainOut(b, "partial:2,2"), exactOut("n")},
		[]uint32{pgtype.Int4OID, pgtype.TextOID, pgtype.TextOID}, nil, nil)
	body := dataRow([]byte("12345"), []byte("alice@example.com"), []byte("a note"))
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = r.MaskDataRow(dst[:0], body)
	}
}

// FuzzMaskDataRow feeds arbitrary bodies to a three-column masker: it must
// never panic, must restore dst on error, and on success must produce a
// well-formed row whose exact columns are unchanged.
func FuzzMaskDataRow(f *testing.F) {
	f.Add(dataRow([]byte("1"), []byte("alice@example.com"), []byte("1985-03-04")))
	f.Add(dataRow(nil, nil, nil))
	f.Add(dataRow([]byte{}, []byte{}, []byte{}))
	f.Add(dataRow([]byte("1"), []byte("x")))
	f.Add([]byte{0, 3, 0xff, 0xff, 0xff, 0xfe})
	f.Add([]byte{0, 3, 0x7f, 0xff, 0xff, 0xff, 1})
	outs := []Output{exactOut("id"), plainOut(f, "email"), plainOut(f, "generalize:month")}
	oids := []uint32{pgtype.Int4OID, pgtype.TextOID, pgtype.DateOID}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, formats := range [][]int16{nil, {1}} {
			r := NewRowMasker(outs, oids, formats, testKey)
			got, err := r.MaskDataRow([]byte("pre"), body)
			if !bytes.HasPrefix(got, []byte("pre")) {
				t.Fatalf("dst prefix lost: %q", got)
			}
			if err != nil {
				if len(got) != 3 {
					t.Fatalf("error %v but output grew: %q", err, got)
				}
				continue
			}
			in, out := parseDataRow(t, body), parseDataRow(t, got[3:])
			if len(out) != 3 || !bytes.Equal(in[0], out[0]) || (in[0] == nil) != (out[0] == nil) {
				t.Fatalf("exact column changed: %q -> %q", in, out)
			}
			if in[1] != nil && !bytes.HasPrefix(out[1], []byte("***")) {
				t.Fatalf("email column not masked: %q", out[1])
			}
		}
	})
}

// copyMasker is a masker for COPY rows (id exact, email, note exact).
func copyMasker(t testing.TB, spec string) *RowMasker {
	return NewRowMasker([]Output{exactOut("id"), plainOut(t, spec), exactOut("note")},
		[]uint32{pgtype.Int4OID, pgtype.TextOID, pgtype.TextOID}, nil, testKey)
}

var textCopy = CopyFormat{Delimiter: '\t', Null: `\N`}

func TestMaskCopyLineText(t *testing.T) {
	cases := []struct {
		spec string
		f    CopyFormat
		in   string
		want string
	}{
		{"email", textCopy, "1\talice@example.com\tnote\n", "1\t***@example.com\tnote\n"},
		{"email", textCopy, "1\t\\N\tnote\n", "1\t\\N\tnote\n"},
		{"email", textCopy, "1\t\\N\t\\N\n", "1\t\\N\t\\N\n"},
		{"nullify", textCopy, "1\talice\tnote\n", "1\t\\N\tnote\n"},
		{"partial:2,2", textCopy, "1\ta\\tb\\\\c\\nd\tx\\ty\n", "1\ta\\t***\\nd\tx\\ty\n"},
		{"partial:1,1", textCopy, "1\t\\101\\x42CD\tn\n", "1\tA**D\tn\n"},
		{"partial:1,0", textCopy, "1\t\\\\abc\tn\n", "1\t\\\\***\tn\n"},
		{"text:a\tb\\c\nd", textCopy, "1\tx\tn\n", "1\ta\\tb\\\\c\\nd\tn\n"},
		{"text:a|b", CopyFormat{Delimiter: '|', Null: "NULL"}, "1|x|n\n", "1|a\\|b|n\n"},
		{"email", CopyFormat{Delimiter: '|', Null: "NULL"}, "1|a\\|b@x|NULL\n", "1|***@x|NULL\n"},
		{"redact", CopyFormat{Delimiter: '|', Null: ""}, "1||n\n", "1||n\n"},
		{"blank", textCopy, "1\tx\tn", "1\t\tn"},
		{"redact", CopyFormat{}, "1\tx\tn\n", "1\t***\tn\n"},
	}
	for _, c := range cases {
		f := c.f
		got, err := copyMasker(t, c.spec).MaskCopyLine([]byte("<"), []byte(c.in), &f)
		if err != nil {
			t.Errorf("%s on %q: %v", c.spec, c.in, err)
			continue
		}
		if string(got) != "<"+c.want {
			t.Errorf("%s on %q: got %q, want %q", c.spec, c.in, got[1:], c.want)
		}
	}
}

func TestMaskCopyLineHeader(t *testing.T) {
	f := CopyFormat{CSV: true, Delimiter: ',', Quote: '"', Header: true}
	r := copyMasker(t, "redact")
	for i, c := range []struct{ in, want string }{
		{"id,email,note\n", "id,email,note\n"},
		{"1,alice,n\n", "1,***,n\n"},
		{"id,email,note\n", "id,***,note\n"},
	} {
		got, err := r.MaskCopyLine(nil, []byte(c.in), &f)
		if err != nil || string(got) != c.want {
			t.Errorf("line %d: got %q, %v; want %q", i, got, err, c.want)
		}
	}
	r.ResetCopy()
	if got, _ := r.MaskCopyLine(nil, []byte("a,b,c\n"), &f); string(got) != "a,b,c\n" {
		t.Errorf("after ResetCopy the header was masked: %q", got)
	}
}

func TestMaskCopyLineCSV(t *testing.T) {
	std := CopyFormat{CSV: true, Delimiter: ',', Quote: '"', Escape: '"'}
	cases := []struct {
		spec string
		f    CopyFormat
		in   string
		want string
	}{
		{"email", std, "1,alice@example.com,note\n", "1,***@example.com,note\n"},
		{"email", std, "1,,note\n", "1,,note\n"},
		{"email", std, "1,\"\",note\n", "1,***,note\n"},
		{"blank", std, "1,x,note\n", "1,\"\",note\n"},
		{"partial:1,1", std, "1,\"a,\"\"b\nc\",\"x,\ny\"\n", "1,a****c,\"x,\ny\"\n"},
		{"email", std, "\"1,2\",\"a\"\"b\"\"@x,y\",\"q\"\"\"\n", "\"1,2\",\"***@x,y\",\"q\"\"\"\n"},
		{"text:a,\"b\"", std, "1,x,n\n", "1,\"a,\"\"b\"\"\",n\n"},
		{"text:line\nbreak", std, "1,x,n\n", "1,\"line\nbreak\",n\n"},
		{"text:\\N", CopyFormat{CSV: true, Null: `\N`}, "1,x,\\N\n", "1,\"\\N\",\\N\n"},
		{"redact", CopyFormat{CSV: true, Null: `\N`}, "1,\\N,\\N\n", "1,\\N,\\N\n"},
		{"partial:1,1", CopyFormat{CSV: true, Delimiter: ';', Quote: '\'', Escape: '\\'}, "1;'a\\'b\\\\c';n\n", "1;a***c;n\n"},
		{"text:it's", CopyFormat{CSV: true, Delimiter: ';', Quote: '\'', Escape: '\\'}, "1;x;n\n", "1;'it\\'s';n\n"},
		{"partial:1,1", std, "1,ab\"c,d\"e,n\n", "1,a****e,n\n"},
	}
	for _, c := range cases {
		f := c.f
		got, err := copyMasker(t, c.spec).MaskCopyLine(nil, []byte(c.in), &f)
		if err != nil {
			t.Errorf("%s on %q: %v", c.spec, c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s on %q: got %q, want %q", c.spec, c.in, got, c.want)
		}
	}
}

// TestMaskCopyLineCSVParses checks masked CSV rows with a standard CSV
// reader: the field count and the exact fields survive.
func TestMaskCopyLineCSVParses(t *testing.T) {
	std := CopyFormat{CSV: true, Delimiter: ',', Quote: '"', Escape: '"'}
	for _, spec := range []string{"redact", "blank", "text:a,\"b\"\nc", "partial:1,1", "email", "pseudonym"} {
		in := "7,\"x,\"\"y\"\"@e.com\",\"n,\"\"1\"\"\"\n"
		got, err := copyMasker(t, spec).MaskCopyLine(nil, []byte(in), &std)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		rec, err := csv.NewReader(bytes.NewReader(got)).Read()
		if err != nil || len(rec) != 3 || rec[0] != "7" || rec[2] != `n,"1"` {
			t.Errorf("%s: %q parses as %q, %v", spec, got, rec, err)
		}
		if strings.Contains(rec[1], "x,") {
			t.Errorf("%s: masked field leaks: %q", spec, rec[1])
		}
	}
}

func TestMaskCopyLineMalformed(t *testing.T) {
	std := CopyFormat{CSV: true, Delimiter: ',', Quote: '"'}
	cases := []struct {
		f    CopyFormat
		in   string
		want error
	}{
		{textCopy, "1\tx\n", errCopyFields},
		{textCopy, "1\tx\ty\tz\n", errCopyFields},
		{textCopy, "1\tx\ty\nextra", errCopyLineShape},
		{textCopy, "", errCopyFields},
		{std, "1,\"x,y\n", errCopyQuote},
		{std, "1,x\n", errCopyFields},
		{std, "1,x,y,z\n", errCopyFields},
		{std, "1,x,y\r\n", errCopyFields},
		{std, "1,x,y\n2,a,b\n", errCopyLineShape},
	}
	for _, c := range cases {
		f := c.f
		got, err := copyMasker(t, "redact").MaskCopyLine([]byte("keep"), []byte(c.in), &f)
		if !errors.Is(err, c.want) || string(got) != "keep" {
			t.Errorf("%q: got %q, %v; want error %v", c.in, got, err, c.want)
		}
	}
}

func TestMaskCopyLineDoesNotAllocate(t *testing.T) {
	r := copyMasker(t, "partial:2,2")
	line := []byte("1\talice\\t@example.com\tnote\n")
	f := textCopy
	dst := make([]byte, 0, 256)
	dst, _ = r.MaskCopyLine(dst, line, &f) // warm the scratch buffers
	allocs := testing.AllocsPerRun(100, func() {
		dst, _ = r.MaskCopyLine(dst[:0], line, &f)
	})
	if allocs != 0 {
		t.Errorf("MaskCopyLine: %v allocations per line", allocs)
	}
}

// FuzzMaskCopyLine: arbitrary lines never panic, and a line that masks
// without error keeps its exact first field.
func FuzzMaskCopyLine(f *testing.F) {
	f.Add("1\talice\tn\n", false)
	f.Add("1,\"a,\"\"b\nc\",n\n", true)
	f.Add("\\", false)
	f.Add("\"", true)
	f.Fuzz(func(t *testing.T, line string, isCSV bool) {
		format := CopyFormat{CSV: isCSV, Null: `\N`}
		r := copyMasker(t, "partial:1,1")
		got, err := r.MaskCopyLine([]byte("pre"), []byte(line), &format)
		if !bytes.HasPrefix(got, []byte("pre")) || err != nil && len(got) != 3 {
			t.Fatalf("%q: got %q, %v", line, got, err)
		}
	})
}
