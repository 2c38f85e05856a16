package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5/pgproto3"
)

// rawConn is a protocol-level client of the proxy that keeps every byte
// the proxy sends back, so that leak checks see what a hostile client
// would see: rows, column descriptions, command tags, every field of
// errors and notices, notifications and parameter statuses.
type rawConn struct {
	conn net.Conn
	fe   *pgproto3.Frontend
	tee  *teeReader
	// startup is what the proxy sent during the startup.
	startup []byte
}

// teeReader records every byte read from the connection.
type teeReader struct {
	r   io.Reader
	mu  sync.Mutex
	buf bytes.Buffer // since the last take
	all bytes.Buffer // since the connection opened
}

func (t *teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.mu.Lock()
	t.buf.Write(p[:n])
	t.all.Write(p[:n])
	t.mu.Unlock()
	return n, err
}

// take returns the bytes read since the last take.
func (t *teeReader) take() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := bytes.Clone(t.buf.Bytes())
	t.buf.Reset()
	return out
}

// rawResult is everything one query brought back.
type rawResult struct {
	Raw      []byte // the bytes of every backend message, as sent
	Fields   [][]pgproto3.FieldDescription
	Rows     [][][]byte // every DataRow's values
	Copy     [][]byte   // every CopyData
	Tags     []string
	Errors   []pgproto3.ErrorResponse
	Notices  []pgproto3.NoticeResponse
	Notifies []pgproto3.NotificationResponse
	Params   []pgproto3.ParameterStatus
	TxStatus byte
}

// Err returns the first error, or nil.
func (r *rawResult) Err() *pgproto3.ErrorResponse {
	if len(r.Errors) == 0 {
		return nil
	}
	return &r.Errors[0]
}

func (r *rawResult) String() string {
	var b strings.Builder
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "ERROR %s %s (detail %q hint %q)\n", e.Code, e.Message, e.Detail, e.Hint)
	}
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "row %q\n", row)
	}
	for _, c := range r.Copy {
		fmt.Fprintf(&b, "copy %q\n", c)
	}
	fmt.Fprintf(&b, "tags %q", r.Tags)
	return b.String()
}

// rawDial connects to addr as user and does the startup. extra holds
// startup parameters besides user and database.
func rawDial(addr, user string, extra map[string]string) (*rawConn, *pgproto3.ErrorResponse, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c := &rawConn{conn: conn, tee: &teeReader{r: conn}}
	c.fe = pgproto3.NewFrontend(c.tee, conn)
	params := map[string]string{"user": user, "database": "postgres"}
	for k, v := range extra {
		params[k] = v
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	if err := c.fe.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			e := *m
			c.startup = c.tee.take()
			conn.Close()
			return c, &e, nil
		case *pgproto3.ReadyForQuery:
			c.startup = c.tee.take()
			return c, nil, nil
		case *pgproto3.AuthenticationOk, *pgproto3.ParameterStatus, *pgproto3.BackendKeyData, *pgproto3.NoticeResponse:
		default:
			conn.Close()
			return nil, nil, fmt.Errorf("unexpected %T during startup (only trust authentication is supported)", msg)
		}
	}
}

// rawConnect connects as user or fails the test; the connection is
// closed at cleanup.
func rawConnect(t testing.TB, addr, user string) *rawConn {
	t.Helper()
	c, e, err := rawDial(addr, user, nil)
	if err != nil {
		t.Fatalf("raw connect as %s: %v", user, err)
	}
	if e != nil {
		t.Fatalf("raw connect as %s: %s %s", user, e.Code, e.Message)
	}
	t.Cleanup(c.Close)
	return c
}

func (c *rawConn) Close() {
	c.fe.Send(&pgproto3.Terminate{})
	c.fe.Flush()
	c.conn.Close()
}

// Simple runs sql as a simple Query.
func (c *rawConn) Simple(sql string) (*rawResult, error) {
	c.fe.Send(&pgproto3.Query{String: sql})
	return c.collect()
}

// Extended runs sql through Parse, Bind (every result column in binary
// format, the parameters as text), Describe portal, Execute and Sync.
func (c *rawConn) Extended(sql string, params ...[]byte) (*rawResult, error) {
	c.fe.SendParse(&pgproto3.Parse{Query: sql})
	c.fe.SendBind(&pgproto3.Bind{Parameters: params, ResultFormatCodes: []int16{1}})
	c.fe.SendDescribe(&pgproto3.Describe{ObjectType: 'P'})
	c.fe.SendExecute(&pgproto3.Execute{})
	c.fe.SendSync(&pgproto3.Sync{})
	return c.collect()
}

// Run runs sql over protocol proto (protoSimple or protoExtended).
func (c *rawConn) Run(sql, proto string) (*rawResult, error) {
	if proto == protoExtended {
		return c.Extended(sql)
	}
	return c.Simple(sql)
}

// FunctionCall sends a fast-path function call.
func (c *rawConn) FunctionCall(oid uint32, args ...[]byte) (*rawResult, error) {
	c.fe.Send(&pgproto3.FunctionCall{Function: oid, Arguments: args, ArgFormatCodes: []uint16{0}})
	return c.collect()
}

// collect flushes what was sent and reads every message up to
// ReadyForQuery. COPY FROM STDIN is failed by the client.
func (c *rawConn) collect() (*rawResult, error) {
	c.tee.take()
	c.conn.SetDeadline(time.Now().Add(60 * time.Second))
	if err := c.fe.Flush(); err != nil {
		return nil, err
	}
	r := &rawResult{}
	for {
		msg, err := c.fe.Receive()
		if err != nil {
			r.Raw = c.tee.take()
			return r, err
		}
		switch m := msg.(type) {
		case *pgproto3.RowDescription:
			fields := make([]pgproto3.FieldDescription, len(m.Fields))
			for i, f := range m.Fields {
				f.Name = bytes.Clone(f.Name)
				fields[i] = f
			}
			r.Fields = append(r.Fields, fields)
		case *pgproto3.DataRow:
			row := make([][]byte, len(m.Values))
			for i, v := range m.Values {
				if v != nil {
					row[i] = bytes.Clone(v)
				}
			}
			r.Rows = append(r.Rows, row)
		case *pgproto3.CopyData:
			r.Copy = append(r.Copy, bytes.Clone(m.Data))
		case *pgproto3.CommandComplete:
			r.Tags = append(r.Tags, string(m.CommandTag))
		case *pgproto3.ErrorResponse:
			r.Errors = append(r.Errors, *m)
		case *pgproto3.NoticeResponse:
			r.Notices = append(r.Notices, *m)
		case *pgproto3.NotificationResponse:
			r.Notifies = append(r.Notifies, *m)
		case *pgproto3.ParameterStatus:
			r.Params = append(r.Params, *m)
		case *pgproto3.CopyInResponse:
			c.fe.Send(&pgproto3.CopyFail{Message: "no data from the test client"})
			if err := c.fe.Flush(); err != nil {
				return r, err
			}
		case *pgproto3.ReadyForQuery:
			r.TxStatus = m.TxStatus
			r.Raw = c.tee.take()
			return r, nil
		}
	}
}

// Everything returns every byte the proxy sent on this connection.
func (c *rawConn) Everything() []byte {
	c.tee.mu.Lock()
	defer c.tee.mu.Unlock()
	return bytes.Clone(c.tee.all.Bytes())
}

// A protected value and the forms in which it must never appear.
type protected struct {
	value string
	forms []leakForm
}

type leakForm struct {
	name string
	b    []byte
	word bool // matched only where not next to a letter (short values)
}

// partialValues are values masked with partial:2,2: what the mask shows
// (the first and last two characters) may appear; any run of five
// characters that reaches into the hidden middle may not.
var partialValues = []string{"+4791234567", "+4798765432", "+4741122334"}

// dateValues are the protected dates (generalize:year shows the year).
var dateValues = []string{"1985-03-04", "1990-07-15", "1979-12-24"}

// extraPII are protected values tests add besides piiValues.
var extraPII = []string{"kari.nordmann@example.com", "ola.hansen@example.org", "ingrid.berg@example.net"}

var (
	leakFormsOnce sync.Once
	leakForms     []protected
)

// allLeakForms builds the forms of every protected value once.
func allLeakForms() []protected {
	leakFormsOnce.Do(func() {
		seen := map[string]bool{}
		add := func(v string) {
			if !seen[v] {
				seen[v] = true
				leakForms = append(leakForms, protected{value: v, forms: formsOf(v)})
			}
		}
		for _, v := range piiValues {
			add(v)
		}
		for _, v := range extraPII {
			add(v)
		}
		for _, v := range partialValues {
			add(v)
			for i := 0; i+5 <= len(v); i++ {
				if i+5 > 2 && i < len(v)-2 { // reaches a hidden character
					add(v[i : i+5])
				}
			}
		}
		for _, d := range dateValues {
			add(d)
			t, err := time.Parse("2006-01-02", d)
			if err != nil {
				panic(err)
			}
			for _, layout := range []string{"02.01.2006", "01/02/2006", "02/01/2006", "01-02-2006", "02-01-2006", "20060102"} {
				add(t.Format(layout))
			}
			days := int32(t.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) / (24 * time.Hour))
			d4 := binary.BigEndian.AppendUint32(nil, uint32(days))
			micros := t.Sub(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).Microseconds()
			d8 := binary.BigEndian.AppendUint64(nil, uint64(micros))
			leakForms = append(leakForms, protected{value: d + " (binary)", forms: []leakForm{
				{name: "binary date", b: d4}, {name: "binary timestamp", b: d8}}})
		}
	})
	return leakForms
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}

// formsOf lists the forms of v to look for: as is, lower and upper case,
// reversed, hex, and base64 (std and URL) at the three byte alignments.
// Values shorter than six characters are matched as whole words only
// (their lower case is common inside words: "ola" in "isolation").
func formsOf(v string) []leakForm {
	short := len(v) < 6
	var out []leakForm
	text := func(name, s string) {
		out = append(out, leakForm{name: name, b: []byte(s), word: short})
	}
	text("raw", v)
	text("lower case", strings.ToLower(v))
	text("upper case", strings.ToUpper(v))
	text("reversed", reverse(v))
	text("reversed lower case", reverse(strings.ToLower(v)))
	for _, s := range []string{v, strings.ToLower(v)} {
		h := hex.EncodeToString([]byte(s))
		out = append(out, leakForm{name: "hex", b: []byte(h)}, leakForm{name: "upper hex", b: []byte(strings.ToUpper(h))})
		for prefix := 0; prefix < 3; prefix++ {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				if frag := base64Fragment(enc, []byte(s), prefix); len(frag) >= 6 {
					out = append(out, leakForm{name: fmt.Sprintf("base64 at offset %d", prefix), b: []byte(frag)})
				}
			}
		}
	}
	return out
}

// base64Fragment returns the characters of the base64 of (prefix bytes +
// v) that depend on v alone.
func base64Fragment(enc *base64.Encoding, v []byte, prefix int) string {
	in := append(make([]byte, prefix), v...)
	s := enc.EncodeToString(in)
	first := (8*prefix + 5) / 6       // first character with no prefix bit
	last := (8*(prefix+len(v)))/6 - 1 // last character made of v's bits only
	if last < first {
		return ""
	}
	return s[first : last+1]
}

// findLeak returns a description of the first protected value found in
// data, or "".
func findLeak(data []byte) string {
	for _, p := range allLeakForms() {
		for _, f := range p.forms {
			if i := indexForm(data, f); i >= 0 {
				lo, hi := max(0, i-40), min(len(data), i+len(f.b)+40)
				return fmt.Sprintf("%q (%s) at byte %d: %q", p.value, f.name, i, data[lo:hi])
			}
		}
	}
	return ""
}

func indexForm(data []byte, f leakForm) int {
	off := 0
	for {
		i := bytes.Index(data[off:], f.b)
		if i < 0 {
			return -1
		}
		i += off
		if !f.word || (!letterAt(data, i-1) && !letterAt(data, i+len(f.b))) {
			return i
		}
		off = i + 1
	}
}

func letterAt(data []byte, i int) bool {
	return i >= 0 && i < len(data) && data[i] < 0x80 && unicode.IsLetter(rune(data[i]))
}

// noLeak fails the test when data holds a protected value in any form.
func noLeak(t testing.TB, what string, data []byte) {
	t.Helper()
	if leak := findLeak(data); leak != "" {
		t.Errorf("LEAK in %s: %s", what, leak)
	}
}

// TestRawClientLeakCheck checks the leak check itself: it must find every
// form, and nothing in masked output.
func TestRawClientLeakCheck(t *testing.T) {
	v := "kari.nordmann"
	found := []string{
		v, strings.ToUpper(v), reverse(v), hex.EncodeToString([]byte(v)),
		strings.ToUpper(hex.EncodeToString([]byte(v))),
		base64.StdEncoding.EncodeToString([]byte(v)),
		base64.URLEncoding.EncodeToString([]byte("x" + v)),
		base64.StdEncoding.EncodeToString([]byte("xy" + v)),
		"x+4791234y", "Ola", "ola.", "+47912", "04.03.1985",
		binaryDate(-5416), // 1985-03-04 as a binary date
	}
	for _, s := range found {
		if findLeak([]byte("..."+s+"...")) == "" {
			t.Errorf("leak check misses %q", s)
		}
	}
	clean := []string{"***@example.com", "+4*******67", "1985-01-01", "isolation", "catalog", "violates", "***"}
	for _, s := range clean {
		if leak := findLeak([]byte(s)); leak != "" {
			t.Errorf("leak check finds %q in %q", leak, s)
		}
	}
}

func binaryDate(days int32) string {
	return string(binary.BigEndian.AppendUint32(nil, uint32(days)))
}
