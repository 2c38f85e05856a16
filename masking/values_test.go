package masking

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgveil/pgveil/rules"
)

// plainOut is a plain PII output with the given strategy spec.
func plainOut(t testing.TB, spec string) Output {
	t.Helper()
	s, err := rules.ParseStrategy(spec)
	if err != nil {
		t.Fatal(err)
	}
	return Output{Name: "c", Sources: []string{"public.t.c"}, Plain: true, Strategy: s}
}

// derivedOut is a computed output derived from a PII column.
func derivedOut() Output {
	return Output{Name: "c", Sources: []string{"public.t.c"}}
}

// maskString runs one masker and returns the result as a string, or
// "<NULL>" for NULL.
func maskString(m ValueMasker, value []byte) string {
	out, null := m.Mask(nil, value)
	if null {
		if len(out) != 0 {
			return "<NULL with bytes>"
		}
		return "<NULL>"
	}
	return string(out)
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestValueMaskerStrategies(t *testing.T) {
	const null = "<NULL>"
	cases := []struct {
		spec   string
		oid    uint32
		format int16
		in     string
		want   string
	}{
		{"redact", pgtype.TextOID, 0, "alice@example.com", "***"},
		{"redact", pgtype.VarcharOID, 1, "alice", "***"},
		{"redact", pgtype.BPCharOID, 0, "ab  ", "***"},
		{"redact", pgtype.NameOID, 1, "alice", "***"},
		{"redact", pgtype.UnknownOID, 0, "alice", "***"},
		{"redact", pgtype.Int4OID, 0, "42", null},
		{"redact", pgtype.Int4OID, 1, "\x00\x00\x00\x2a", null},
		{"redact", 16385, 0, "citext value", null},
		{"redact", pgtype.JSONOID, 0, `{"a":1}`, `"***"`},
		{"redact", pgtype.JSONOID, 1, `{"a":1}`, `"***"`},
		{"redact", pgtype.JSONBOID, 0, `{"a": 1}`, `"***"`},
		{"redact", pgtype.JSONBOID, 1, "\x01{\"a\": 1}", "\x01\"***\""},
		{"nullify", pgtype.TextOID, 0, "alice", null},
		{"nullify", pgtype.JSONOID, 0, "{}", null},
		{"blank", pgtype.TextOID, 0, "alice", ""},
		{"blank", pgtype.Int4OID, 0, "42", null},
		{"blank", pgtype.JSONOID, 0, "{}", `""`},
		{"blank", pgtype.JSONBOID, 1, "\x01{}", "\x01\"\""},
		{"text:hidden", pgtype.TextOID, 0, "alice", "hidden"},
		{"text:hidden", pgtype.VarcharOID, 1, "alice", "hidden"},
		{"text:hidden", pgtype.DateOID, 0, "1985-03-04", null},
		{"text:hidden", pgtype.JSONOID, 0, "{}", `"***"`},
		{"partial:2,2", pgtype.TextOID, 0, "555-123-4567", "55********67"},
		{"partial:1,0", pgtype.TextOID, 0, "alice", "a****"},
		{"partial:0,3", pgtype.TextOID, 1, "alice", "**ice"},
		{"partial:0,0", pgtype.TextOID, 0, "alice", "*****"},
		{"partial:2,2", pgtype.TextOID, 0, "abcd", "****"},
		{"partial:2,2", pgtype.TextOID, 0, "abc", "***"},
		{"partial:2,2", pgtype.TextOID, 0, "", ""},
		{"partial:1,1", pgtype.TextOID, 0, "Zoë Ünal", "Z******l"},
		{"partial:2,1", pgtype.TextOID, 0, "日本語テキスト", "日本****ト"},
		{"partial:1,1", pgtype.TextOID, 0, "a\xffbc\xfe", "a***\x2a"},
		{"partial:1,1", pgtype.Int4OID, 0, "12345", null},
		{"partial:1,1", pgtype.JSONBOID, 0, `"x"`, `"***"`},
		{"email", pgtype.TextOID, 0, "alice@example.com", "***@example.com"},
		{"email", pgtype.TextOID, 0, `"a@b"@example.com`, "***@example.com"},
		{"email", pgtype.TextOID, 0, "no-at-sign", "***"},
		{"email", pgtype.TextOID, 0, "trailing@", "***@"},
		{"email", pgtype.Int8OID, 0, "1", null},
		{"email", pgtype.JSONOID, 0, `"a@b.c"`, `"***"`},
		{"pseudonym", pgtype.Int4OID, 0, "42", null},
		{"pseudonym", pgtype.JSONOID, 0, `"a"`, `"***"`},
		{"generalize:year", pgtype.TextOID, 0, "1985-03-04", null},
		{"generalize:year", pgtype.Int4OID, 0, "1985", null},
		{"random_email", pgtype.TextOID, 0, "alice@example.com", "***"},
		{"redact", pgtype.TextOID, 2, "alice", null},
		{"email", pgtype.TextOID, -1, "alice@example.com", null},
	}
	for _, c := range cases {
		m := NewValueMasker(plainOut(t, c.spec), c.oid, c.format, testKey)
		if got := maskString(m, []byte(c.in)); got != c.want {
			t.Errorf("%s oid %d format %d on %q: got %q, want %q", c.spec, c.oid, c.format, c.in, got, c.want)
		}
	}
}

func TestValueMaskerNullStaysNull(t *testing.T) {
	specs := []string{"redact", "nullify", "blank", "text:x", "partial:1,1", "email", "pseudonym", "generalize:year"}
	oids := []uint32{pgtype.TextOID, pgtype.JSONBOID, pgtype.DateOID, pgtype.TimestamptzOID, pgtype.Int4OID}
	for _, spec := range specs {
		for _, oid := range oids {
			for _, format := range []int16{0, 1} {
				m := NewValueMasker(plainOut(t, spec), oid, format, testKey)
				if out, null := m.Mask([]byte("pre"), nil); !null || string(out) != "pre" {
					t.Errorf("%s oid %d format %d: NULL gave %q null=%v", spec, oid, format, out, null)
				}
			}
		}
	}
}

func TestValueMaskerDerived(t *testing.T) {
	cases := []struct {
		oid    uint32
		format int16
		want   string
	}{
		{pgtype.TextOID, 0, "***"},
		{pgtype.VarcharOID, 1, "***"},
		{pgtype.JSONOID, 0, `"***"`},
		{pgtype.JSONBOID, 1, "\x01\"***\""},
		{pgtype.Int4OID, 1, "<NULL>"},
		{pgtype.DateOID, 0, "<NULL>"},
	}
	for _, c := range cases {
		// A derived output ignores the strategy even when one is set.
		o := derivedOut()
		o.Strategy = rules.Strategy{Kind: rules.Partial, KeepFirst: 10, KeepLast: 10}
		m := NewValueMasker(o, c.oid, c.format, testKey)
		if got := maskString(m, []byte("alice")); got != c.want {
			t.Errorf("derived oid %d format %d: got %q, want %q", c.oid, c.format, got, c.want)
		}
	}
}

func TestValueMaskerExactCopies(t *testing.T) {
	m := NewValueMasker(Output{Name: "id"}, pgtype.Int4OID, 1, nil)
	in := []byte{0, 0, 1, 2}
	out, null := m.Mask([]byte("x"), in)
	if null || string(out) != "x\x00\x00\x01\x02" {
		t.Fatalf("exact copy gave %q null=%v", out, null)
	}
	if out, null := m.Mask(nil, nil); !null || len(out) != 0 {
		t.Fatalf("exact NULL gave %q null=%v", out, null)
	}
}

func TestPartialNeverRevealsShortValues(t *testing.T) {
	m := NewValueMasker(plainOut(t, "partial:3,3"), pgtype.TextOID, 0, nil)
	for _, v := range []string{"a", "ab", "abcdef", "äöüßéè"} {
		got := maskString(m, []byte(v))
		if got != strings.Repeat("*", utf8.RuneCountInString(v)) {
			t.Errorf("partial:3,3 on %q gave %q", v, got)
		}
	}
	huge := NewValueMasker(plainOut(t, "partial:9223372036854775807,9223372036854775807"), pgtype.TextOID, 0, nil)
	if got := maskString(huge, []byte("secret")); got != "******" {
		t.Errorf("huge partial counts gave %q", got)
	}
}

func TestPartialOutputIsValidUTF8(t *testing.T) {
	m := NewValueMasker(plainOut(t, "partial:2,2"), pgtype.TextOID, 0, nil)
	for _, v := range []string{"\xff\xfeabc\xc3", "é\x80xyz\xe2\x82", "\xe2\x82\xacabc€"} {
		if got := maskString(m, []byte(v)); !utf8.ValidString(got) {
			t.Errorf("partial on %q gave invalid UTF-8 %q", v, got)
		}
	}
}

func TestPseudonymIsKeyedHMAC(t *testing.T) {
	m := NewValueMasker(plainOut(t, "pseudonym"), pgtype.TextOID, 0, testKey)
	got := maskString(m, []byte("alice@example.com"))
	mac := hmac.New(sha256.New, testKey)
	mac.Write([]byte("alice@example.com"))
	want := "pseu_" + hex.EncodeToString(mac.Sum(nil)[:8])
	if got != want {
		t.Fatalf("pseudonym: got %q, want %q", got, want)
	}
	if again := maskString(m, []byte("alice@example.com")); again != got {
		t.Fatalf("pseudonym not deterministic: %q then %q", got, again)
	}
	if other := maskString(m, []byte("bob@example.com")); other == got {
		t.Fatalf("two values gave the same pseudonym %q", got)
	}
	m2 := NewValueMasker(plainOut(t, "pseudonym"), pgtype.VarcharOID, 1, []byte("another key"))
	if other := maskString(m2, []byte("alice@example.com")); other == got {
		t.Fatalf("two keys gave the same pseudonym %q", got)
	}
}

func TestPseudonymLongKey(t *testing.T) {
	key := []byte(strings.Repeat("k", 100))
	m := NewValueMasker(plainOut(t, "pseudonym"), pgtype.TextOID, 0, key)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("v"))
	want := "pseu_" + hex.EncodeToString(mac.Sum(nil)[:8])
	if got := maskString(m, []byte("v")); got != want {
		t.Fatalf("long key: got %q, want %q", got, want)
	}
}

func TestPseudonymKeepsDstPrefix(t *testing.T) {
	m := NewValueMasker(plainOut(t, "pseudonym"), pgtype.TextOID, 0, testKey)
	dst := make([]byte, 0, 8) // too small: the scratch forces growth
	dst = append(dst, "pre:"...)
	out, _ := m.Mask(dst, []byte("alice"))
	if !strings.HasPrefix(string(out), "pre:pseu_") || len(out) != 4+5+16 {
		t.Fatalf("pseudonym with a prefix gave %q", out)
	}
}

func TestGeneralizeText(t *testing.T) {
	const null = "<NULL>"
	cases := []struct {
		spec string
		oid  uint32
		in   string
		want string
	}{
		{"generalize:year", pgtype.DateOID, "1985-03-04", "1985-01-01"},
		{"generalize:month", pgtype.DateOID, "1985-03-04", "1985-03-01"},
		{"generalize:month", pgtype.DateOID, "0044-03-15 BC", "0044-03-01 BC"},
		{"generalize:year", pgtype.DateOID, "12345-06-07", "12345-01-01"},
		{"generalize:year", pgtype.DateOID, "infinity", "infinity"},
		{"generalize:year", pgtype.DateOID, "-infinity", "-infinity"},
		{"generalize:year", pgtype.DateOID, "4714-11-24 BC", null},
		{"generalize:year", pgtype.DateOID, "4713-11-24 BC", "4713-01-01 BC"},
		{"generalize:year", pgtype.DateOID, "03/04/1985", null},
		{"generalize:year", pgtype.DateOID, "1985-13-04", null},
		{"generalize:year", pgtype.DateOID, "1985-03-04 12:00:00", null},
		{"generalize:year", pgtype.DateOID, "1985-03-04 AD", null},
		{"generalize:year", pgtype.DateOID, "85-03-04", null},
		{"generalize:year", pgtype.DateOID, "", null},
		{"generalize:year", pgtype.TimestampOID, "1985-03-04 12:34:56", "1985-01-01 00:00:00"},
		{"generalize:month", pgtype.TimestampOID, "1985-03-04 12:34:56.123", "1985-03-01 00:00:00"},
		{"generalize:month", pgtype.TimestampOID, "0001-12-31 23:59:59.999999 BC", "0001-12-01 00:00:00 BC"},
		{"generalize:year", pgtype.TimestampOID, "1985-03-04 12:34:56+01", null},
		{"generalize:year", pgtype.TimestampOID, "1985-03-04 12:34:5", null},
		{"generalize:year", pgtype.TimestampOID, "1985-03-04 12:34:56.", null},
		{"generalize:year", pgtype.TimestampOID, "Mon Mar 04 12:34:56 1985", null},
		{"generalize:year", pgtype.TimestamptzOID, "1985-03-04 12:34:56+01", "1985-01-01 00:00:00+01"},
		{"generalize:month", pgtype.TimestamptzOID, "1985-03-04 12:34:56.5-05:30", "1985-03-01 00:00:00-05:30"},
		{"generalize:month", pgtype.TimestamptzOID, "1895-03-04 12:34:56+00:09:21", "1895-03-01 00:00:00+00:09:21"},
		{"generalize:year", pgtype.TimestamptzOID, "0100-03-04 12:34:56+00 BC", "0100-01-01 00:00:00+00 BC"},
		{"generalize:year", pgtype.TimestamptzOID, "1985-03-04 12:34:56", null},
		{"generalize:year", pgtype.TimestamptzOID, "1985-03-04 12:34:56+1", null},
		{"generalize:year", pgtype.TimestamptzOID, "1985-03-04 12:34:56+01:", null},
		{"generalize:year", pgtype.TimestamptzOID, "infinity", "infinity"},
	}
	for _, c := range cases {
		for _, oid := range []uint32{c.oid} {
			m := NewValueMasker(plainOut(t, c.spec), oid, 0, nil)
			if got := maskString(m, []byte(c.in)); got != c.want {
				t.Errorf("%s oid %d on %q: got %q, want %q", c.spec, oid, c.in, got, c.want)
			}
		}
	}
}

// TestGeneralizeTextDecodes checks that pgx parses the text results.
func TestGeneralizeTextDecodes(t *testing.T) {
	tm := pgtype.NewMap()
	m := NewValueMasker(plainOut(t, "generalize:month"), pgtype.TimestamptzOID, 0, nil)
	out, null := m.Mask(nil, []byte("1985-03-04 12:34:56.789+05:30"))
	var ts time.Time
	if null {
		t.Fatal("timestamptz text gave NULL")
	}
	if err := tm.Scan(pgtype.TimestamptzOID, 0, out, &ts); err != nil {
		t.Fatalf("pgx cannot decode %q: %v", out, err)
	}
	want := time.Date(1985, 3, 1, 0, 0, 0, 0, time.FixedZone("", 5*3600+1800))
	if !ts.Equal(want) {
		t.Fatalf("decoded %v, want %v", ts, want)
	}
	md := NewValueMasker(plainOut(t, "generalize:year"), pgtype.DateOID, 0, nil)
	out, _ = md.Mask(nil, []byte("1985-03-04"))
	var d time.Time
	if err := tm.Scan(pgtype.DateOID, 0, out, &d); err != nil || !d.Equal(time.Date(1985, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("date %q decoded to %v, %v", out, d, err)
	}
}

// encodeBinary encodes v with pgx in binary format.
func encodeBinary(t testing.TB, oid uint32, v any) []byte {
	t.Helper()
	b, err := pgtype.NewMap().Encode(oid, 1, v, nil)
	if err != nil {
		t.Fatalf("encode %v: %v", v, err)
	}
	return b
}

func TestGeneralizeBinary(t *testing.T) {
	tm := pgtype.NewMap()
	cases := []struct {
		spec string
		oid  uint32
		in   time.Time
		want time.Time
	}{
		{"generalize:year", pgtype.DateOID, utcDate(1985, 3, 4), utcDate(1985, 1, 1)},
		{"generalize:month", pgtype.DateOID, utcDate(1985, 3, 4), utcDate(1985, 3, 1)},
		{"generalize:month", pgtype.DateOID, utcDate(1969, 12, 31), utcDate(1969, 12, 1)},
		{"generalize:year", pgtype.DateOID, utcDate(-43, 3, 15), utcDate(-43, 1, 1)},
		{"generalize:year", pgtype.DateOID, utcDate(2000, 1, 1), utcDate(2000, 1, 1)},
		{"generalize:year", pgtype.TimestampOID, time.Date(1985, 3, 4, 12, 34, 56, 123000, time.UTC), utcDate(1985, 1, 1)},
		{"generalize:month", pgtype.TimestampOID, time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC), utcDate(1999, 12, 1)},
		{"generalize:month", pgtype.TimestamptzOID, time.Date(2024, 3, 1, 0, 30, 0, 0, time.FixedZone("", 3600)), utcDate(2024, 2, 1)},
		{"generalize:year", pgtype.TimestamptzOID, time.Date(2024, 7, 1, 8, 0, 0, 0, time.UTC), utcDate(2024, 1, 1)},
	}
	for _, c := range cases {
		m := NewValueMasker(plainOut(t, c.spec), c.oid, 1, nil)
		out, null := m.Mask(nil, encodeBinary(t, c.oid, c.in))
		if null {
			t.Errorf("%s oid %d on %v: NULL", c.spec, c.oid, c.in)
			continue
		}
		var got time.Time
		if err := tm.Scan(c.oid, 1, out, &got); err != nil {
			t.Errorf("%s oid %d: pgx cannot decode %x: %v", c.spec, c.oid, out, err)
			continue
		}
		if !got.Equal(c.want) {
			t.Errorf("%s oid %d on %v: got %v, want %v", c.spec, c.oid, c.in, got, c.want)
		}
	}
}

// utcDate returns midnight UTC of a proleptic Gregorian date.
func utcDate(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestGeneralizeBinaryEdges(t *testing.T) {
	const null = "<NULL>"
	be32 := func(v int32) string { return string([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}) }
	be64 := func(v int64) string { return be32(int32(v>>32)) + be32(int32(v)) }
	cases := []struct {
		oid  uint32
		in   string
		want string
	}{
		{pgtype.DateOID, be32(math.MaxInt32), be32(math.MaxInt32)},
		{pgtype.DateOID, be32(math.MinInt32), be32(math.MinInt32)},
		{pgtype.DateOID, be32(pgMinDate), null},
		{pgtype.DateOID, be32(pgMinDate - 1), null},
		{pgtype.DateOID, be32(pgMaxDate + 1), null},
		{pgtype.DateOID, "\x00\x00\x01", null},
		{pgtype.TimestampOID, be64(math.MaxInt64), be64(math.MaxInt64)},
		{pgtype.TimestamptzOID, be64(math.MinInt64), be64(math.MinInt64)},
		{pgtype.TimestampOID, be64(pgMinTimestamp), null},
		{pgtype.TimestampOID, be64(pgEndTimestamp), null},
		{pgtype.TimestampOID, be64(-1), be64(-int64(365 * 24 * 3600 * microsPerSecond))},
		{pgtype.TimestampOID, be32(0), null},
	}
	for _, c := range cases {
		m := NewValueMasker(plainOut(t, "generalize:year"), c.oid, 1, nil)
		if got := maskString(m, []byte(c.in)); got != c.want {
			t.Errorf("oid %d on %x: got %x, want %x", c.oid, c.in, got, c.want)
		}
	}
}

// TestMaskedValuesDecode proves each text-type result decodes with pgx as
// the column's type, in both formats.
func TestMaskedValuesDecode(t *testing.T) {
	tm := pgtype.NewMap()
	specs := []string{"redact", "blank", "text:fixed", "partial:1,1", "email", "pseudonym"}
	for _, spec := range specs {
		for _, oid := range []uint32{pgtype.TextOID, pgtype.VarcharOID, pgtype.JSONOID, pgtype.JSONBOID} {
			for _, format := range []int16{0, 1} {
				in := []byte(`"alice@example.com"`)
				if oid == pgtype.JSONBOID && format == 1 {
					in = append([]byte{1}, in...)
				}
				m := NewValueMasker(plainOut(t, spec), oid, format, testKey)
				out, null := m.Mask(nil, in)
				if null {
					t.Errorf("%s oid %d format %d: NULL", spec, oid, format)
					continue
				}
				var v any
				if err := tm.Scan(oid, format, out, &v); err != nil {
					t.Errorf("%s oid %d format %d: pgx cannot decode %q: %v", spec, oid, format, out, err)
				}
				if oid == pgtype.JSONOID && !json.Valid(out) {
					t.Errorf("%s: %q is not valid JSON", spec, out)
				}
			}
		}
	}
}

func TestMaskDoesNotAllocate(t *testing.T) {
	value := []byte("alice.smith@example.com")
	dateBin := encodeBinary(t, pgtype.DateOID, utcDate(1985, 3, 4))
	tsBin := encodeBinary(t, pgtype.TimestamptzOID, time.Date(1985, 3, 4, 1, 2, 3, 0, time.UTC))
	cases := []struct {
		spec   string
		oid    uint32
		format int16
		value  []byte
	}{
		{"redact", pgtype.TextOID, 0, value},
		{"text:fixed", pgtype.TextOID, 0, value},
		{"partial:2,3", pgtype.TextOID, 0, value},
		{"email", pgtype.TextOID, 0, value},
		{"pseudonym", pgtype.TextOID, 0, value},
		{"generalize:month", pgtype.TimestamptzOID, 0, []byte("1985-03-04 12:34:56+01")},
		{"generalize:year", pgtype.DateOID, 1, dateBin},
		{"generalize:year", pgtype.TimestamptzOID, 1, tsBin},
	}
	dst := make([]byte, 0, 256)
	for _, c := range cases {
		m := NewValueMasker(plainOut(t, c.spec), c.oid, c.format, testKey)
		allocs := testing.AllocsPerRun(100, func() {
			dst, _ = m.Mask(dst[:0], c.value)
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Mask", c.spec, allocs)
		}
	}
}

func BenchmarkMaskPartial(b *testing.B) {
	m := NewValueMasker(plainOut(b, "partial:2,2"), pgtype.TextOID, 0, nil)
	value := []byte("alice.smith@example.com")
	dst := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = m.Mask(dst[:0], value)
	}
}

func BenchmarkMaskPseudonym(b *testing.B) {
	m := NewValueMasker(plainOut(b, "pseudonym"), pgtype.TextOID, 0, testKey)
	value := []byte("alice.smith@example.com")
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = m.Mask(dst[:0], value)
	}
}

// A computed output must not tell NULL from a value: it masks both alike.
func TestComputedOutputHidesNull(t *testing.T) {
	computed := Output{Sources: []string{"public.customers.email"}}
	for _, tc := range []struct {
		oid  uint32
		want string // "" means NULL
	}{{25, "***"}, {1043, "***"}, {23, ""}, {1082, ""}} {
		m := NewValueMasker(computed, tc.oid, 0, nil)
		a, aNull := m.Mask(nil, nil)
		b, bNull := m.Mask(nil, []byte("k"))
		if aNull != bNull || string(a) != string(b) {
			t.Fatalf("type %d: NULL gives %q/%v, a value gives %q/%v", tc.oid, a, aNull, b, bNull)
		}
		if got := string(b); (tc.want == "") != bNull || got != tc.want {
			t.Fatalf("type %d: got %q null=%v, want %q", tc.oid, got, bNull, tc.want)
		}
	}
	// A plain column keeps NULL: IS NULL on it is allowed anyway.
	plain := Output{Sources: []string{"public.customers.email"}, Plain: true, Strategy: rules.Strategy{Kind: rules.Redact}}
	if _, null := NewValueMasker(plain, 25, 0, nil).Mask(nil, nil); !null {
		t.Fatal("a plain NULL was masked to a value")
	}
}
