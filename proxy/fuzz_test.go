package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The fuzz targets below drive the proxy's own parsing with arbitrary
// bytes: the startup phase, client messages (plain and masked sessions) and
// server messages as a masked session reads them. They check that nothing
// panics and that every failure is a clean error: a protocolError or
// clientError the session turns into a FATAL, or the end of the input.
// Their seeds are in testdata/fuzz and run with every `go test`.

// fuzzConn is a net.Conn that reads from a fixed input and discards writes.
type fuzzConn struct{ r *bytes.Reader }

func (c fuzzConn) Read(b []byte) (int, error)     { return c.r.Read(b) }
func (fuzzConn) Write(b []byte) (int, error)      { return len(b), nil }
func (fuzzConn) Close() error                     { return nil }
func (fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (fuzzConn) SetDeadline(time.Time) error      { return nil }
func (fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (fuzzConn) SetWriteDeadline(time.Time) error { return nil }
func newFuzzConn(data []byte) fuzzConn            { return fuzzConn{bytes.NewReader(data)} }
func fuzzLog() *slog.Logger                       { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func fuzzServer(g Guard) *Server                  { return New(fuzzOptions(g), fuzzLog(), nil) }
func fuzzOptions(g Guard) Options {
	return Options{Upstream: "127.0.0.1:1", MaxMessageSize: 1 << 16, Guard: g}
}
func fuzzSession(g Guard, client []byte) *session {
	return newSession(fuzzServer(g), newFuzzConn(client))
}
func startupSeed(params ...string) []byte  { return mustEncode(startupMessage(params...)) }
func mustEncode(m pgproto3.Message) []byte { b, _ := m.Encode(nil); return b }
func startupMessage(kv ...string) *pgproto3.StartupMessage {
	p := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: p}
}

// cleanEnd reports whether err is one a session ends on cleanly: the input
// ran out, or a malformed message the client is told about.
func cleanEnd(err error) bool {
	var pe *protocolError
	var ce *clientError
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &pe) || errors.As(err, &ce)
}

func FuzzStartupPacket(f *testing.F) {
	f.Add(startupSeed("user", "postgres", "database", "postgres"))
	f.Add(append([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f}, startupSeed("user", "u")...)) // SSLRequest first
	f.Add([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x30})                                      // GSSENCRequest
	f.Add([]byte{0, 0, 0, 16, 4, 0xd2, 0x16, 0x2e, 0, 0, 0, 1, 0, 0, 0, 2})             // CancelRequest
	f.Add([]byte{0, 0, 0, 9, 0, 3, 0, 0, 'u'})                                          // no terminator
	f.Add([]byte{0, 0, 0, 8, 0, 2, 0, 0})                                               // protocol 2
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzSession(nil, data)
		msg, err := s.readStartup()
		if !cleanEnd(err) && err.Error() == "" {
			t.Fatalf("unexplained error %T", err)
		}
		if err == nil && msg != nil && msg.ProtocolVersion>>16 != protocolMajor3 {
			t.Fatalf("accepted protocol %#x", msg.ProtocolVersion)
		}
	})
}

// refuseGuard refuses any statement that mentions "secret" and masks nobody.
type refuseGuard struct{}

func (refuseGuard) Open(SessionInfo, func(string) ([][]string, error)) (Policy, error) {
	return nil, nil
}

func (refuseGuard) Screen(_ string, sql []byte) error {
	if bytes.Contains(sql, []byte("secret")) {
		return errors.New("refused")
	}
	return nil
}

func clientSeeds() [][]byte {
	var b []byte
	b = appendQuery(b, "SELECT 1")
	b = append(b, mustEncode(&pgproto3.Parse{Name: "s", Query: "SELECT secret"})...)
	b = append(b, mustEncode(&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"})...)
	b = append(b, mustEncode(&pgproto3.Describe{ObjectType: 'P', Name: "p"})...)
	b = append(b, mustEncode(&pgproto3.Execute{Portal: "p"})...)
	b = append(b, mustEncode(&pgproto3.Close{ObjectType: 'S', Name: "s"})...)
	b = append(b, mustEncode(&pgproto3.Sync{})...)
	b = append(b, mustEncode(&pgproto3.CopyData{Data: []byte("1\tx\n")})...)
	b = append(b, mustEncode(&pgproto3.CopyDone{})...)
	return [][]byte{b, {'Q', 0, 0, 0, 4}, {'Q', 0, 0, 0, 3}, {'P', 0, 0, 0, 6, 0, 'x'}, {'Q', 0xff, 0xff, 0xff, 0xff}}
}

// FuzzClientMessages runs arbitrary client bytes through the pump of an
// untouched session whose guard screens Query and Parse.
func FuzzClientMessages(f *testing.F) {
	for _, s := range clientSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := fuzzSession(refuseGuard{}, nil)
		p := newPump(newFuzzConn(data), io.Discard, s.opts.MaxMessageSize)
		if err := p.run(clientHandler{s}); !cleanEnd(err) {
			t.Fatalf("unclean end: %T %v", err, err)
		}
	})
}

// fuzzPolicy allows every statement and masks every column to NULL, so
// that rows, COPY data and the extended protocol's bookkeeping are all
// exercised.
type fuzzPolicy struct{}

type fuzzQuery string

func (q fuzzQuery) Statements() int   { return 1 }
func (q fuzzQuery) Rewrite() *Rewrite { return nil }
func (q fuzzQuery) Text() string      { return string(q) }
func (fuzzPolicy) Warm(string)        {}
func (fuzzPolicy) Forget(Names)       {}
func (fuzzPolicy) Close()             {}
func (fuzzPolicy) Analyze(sql string) (Query, error) {
	if bytes.Contains([]byte(sql), []byte("secret")) {
		return nil, errors.New("refused")
	}
	return fuzzQuery(sql), nil
}
func (p fuzzPolicy) Cached(sql string) (Query, error, bool) {
	q, err := p.Analyze(sql)
	return q, err, true
}
func (fuzzPolicy) Result(Query, int, []pgproto3.FieldDescription, []int16) (Masker, error) {
	return nullRows{}, nil
}
func (fuzzPolicy) CopyResult(Query, int) (Masker, error) { return nullRows{}, nil }
func (fuzzPolicy) Completed(Query, int) Names            { return Names{} }
func (fuzzPolicy) ScrubErrors(Query, int) bool           { return true }
func (fuzzPolicy) Ready(byte, bool)                      {}
func (fuzzPolicy) Barrier(Query) bool                    { return false }
func (fuzzPolicy) Bindable(Query) error                  { return nil }

func serverSeeds() [][]byte {
	fields := []pgproto3.FieldDescription{{Name: []byte("a"), DataTypeOID: 25, DataTypeSize: -1, TypeModifier: -1}}
	var b []byte
	for _, m := range []pgproto3.Message{
		&pgproto3.ParseComplete{}, &pgproto3.BindComplete{},
		&pgproto3.ParameterDescription{ParameterOIDs: []uint32{25}},
		&pgproto3.RowDescription{Fields: fields},
		&pgproto3.DataRow{Values: [][]byte{[]byte("kari@example.com")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")},
		&pgproto3.CopyOutResponse{ColumnFormatCodes: []uint16{0}},
		&pgproto3.CopyData{Data: []byte("x\n")},
		&pgproto3.CopyDone{},
		&pgproto3.ErrorResponse{Severity: "ERROR", Code: "22P02", Message: "invalid input syntax: \"kari\""},
		&pgproto3.NoticeResponse{Severity: "NOTICE", Message: "kari"},
		&pgproto3.NotificationResponse{Channel: "c", Payload: "kari"},
		&pgproto3.ReadyForQuery{TxStatus: 'I'},
	} {
		b = append(b, mustEncode(m)...)
	}
	return [][]byte{b, {'D', 0, 0, 0, 6, 0, 1}, {'D', 0, 0, 0, 10, 0, 1, 0x7f, 0xff, 0xff, 0xff}, {'T', 0, 0, 0, 6, 0, 9}}
}

// FuzzMaskedSession runs arbitrary client bytes and then arbitrary server
// bytes through the pumps of one masked session, as maskedClient and
// maskedServer read them.
func FuzzMaskedSession(f *testing.F) {
	for _, c := range clientSeeds() {
		for _, s := range serverSeeds() {
			f.Add(c, s)
		}
	}
	f.Fuzz(func(t *testing.T, client, server []byte) {
		s := fuzzSession(nil, nil)
		m := newMasking(s, fuzzPolicy{})
		p := newPump(newFuzzConn(client), io.Discard, s.opts.MaxMessageSize)
		if err := p.run(maskedClient{m}); !cleanEnd(err) {
			t.Fatalf("client side: unclean end: %T %v", err, err)
		}
		p = newPump(newFuzzConn(server), io.Discard, s.opts.MaxMessageSize)
		if err := p.run(maskedServer{m, &serverHandler{s: s}}); !cleanEnd(err) {
			t.Fatalf("server side: unclean end: %T %v", err, err)
		}
	})
}

// FuzzAuthMessage feeds arbitrary server messages of the authentication
// phase (SASL offers above all) to the code that rewrites them.
func FuzzAuthMessage(f *testing.F) {
	f.Add(mustEncode(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}}))
	f.Add(mustEncode(&pgproto3.AuthenticationOk{}))
	f.Add([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 10})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < headerLen {
			return
		}
		out := withoutChannelBinding(data)
		if bytes.Contains(out, []byte("-PLUS\x00")) && !bytes.Equal(out, data) {
			t.Fatalf("rewritten offer still has a -PLUS mechanism: %q", out)
		}
		errorSeverity(data)
		textRow(data)
	})
}

// TestCodeOfWrappedClientError: a guard's setup error wrapping the
// session's lost upstream keeps 08006.
func TestCodeOfWrappedClientError(t *testing.T) {
	lost := &clientError{codeConnectionFailure, "pgveil: lost connection to upstream"}
	if got := codeOf(fmt.Errorf("pgveil: cannot read the session's settings: %w", lost)); got != codeConnectionFailure {
		t.Fatalf("codeOf = %s, want %s", got, codeConnectionFailure)
	}
	if got := codeOf(errors.New("refused")); got != "42501" {
		t.Fatalf("codeOf(plain error) = %s, want 42501", got)
	}
}

// TestHeaderAloneAllocatesLittle: a header claiming a message of nearly
// max_message_size, followed by a few bytes, must not make the pump
// allocate the claimed size; a real large message still arrives whole.
func TestHeaderAloneAllocatesLittle(t *testing.T) {
	const limit = 1 << 30
	claim := []byte{'Q', 0x3f, 0xff, 0xff, 0xf0, 'S', 'E', 'L'}
	p := newPump(newFuzzConn(claim), io.Discard, limit)
	if err := p.run(clientHandler{fuzzSession(nil, nil)}); !errors.Is(err, io.EOF) {
		t.Fatalf("run: %v", err)
	}
	if len(p.buf) > 1<<20 {
		t.Fatalf("a header alone grew the buffer to %d bytes", len(p.buf))
	}
	big := appendQuery(nil, string(bytes.Repeat([]byte{'x'}, 3<<20)))
	p = newPump(newFuzzConn(big), io.Discard, limit)
	msg, err := p.next()
	if err != nil || !bytes.Equal(msg, big) {
		t.Fatalf("a 3 MiB message: %d bytes, %v", len(msg), err)
	}
}
