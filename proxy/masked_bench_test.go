package proxy

import (
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// benchPolicy is a masked session's policy whose analyses are all cached
// and cost nothing, so that a benchmark measures the proxy's own work.
type benchPolicy struct {
	fuzzPolicy
	q Query
}

func (p benchPolicy) Cached(string) (Query, error, bool) { return p.q, nil, true }
func (p benchPolicy) Analyze(string) (Query, error)      { return p.q, nil }
func (benchPolicy) Result(Query, int, []pgproto3.FieldDescription, []int16) (Masker, error) {
	return copyRows{}, nil
}
func (benchPolicy) ScrubErrors(Query, int) bool { return false }

// benchQuery is an analysis whose text the server runs as it is.
type benchQuery struct{}

func (benchQuery) Statements() int   { return 1 }
func (benchQuery) Rewrite() *Rewrite { return nil }
func (benchQuery) Text() string      { return "" }

// copyRows "masks" a row by copying it, as a masker with nothing to
// replace in it would.
type copyRows struct{}

func (copyRows) DataRow(dst, body []byte) ([]byte, error)  { return append(dst, body...), nil }
func (copyRows) CopyLine(dst, line []byte) ([]byte, error) { return append(dst, line...), nil }
func (copyRows) Flush()                                    {}

// Answers of benchServer, encoded once.
var (
	benchRowDesc = mustEncode(&pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{
		{Name: []byte("abalance"), TableOID: 16400, TableAttributeNumber: 3, DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}})
	benchParamDesc = mustEncode(&pgproto3.ParameterDescription{ParameterOIDs: []uint32{23}})
	benchRow       = mustEncode(&pgproto3.DataRow{Values: [][]byte{[]byte("-4211")}})
	benchComplete  = mustEncode(&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	benchReady     = mustEncode(&pgproto3.ReadyForQuery{TxStatus: 'I'})
)

// benchServer answers what the proxy forwarded the way PostgreSQL answers
// pgbench -S: one row of one int4 column per Execute.
func benchServer(dst, in []byte) []byte {
	for len(in) >= headerLen {
		n := int(binary.BigEndian.Uint32(in[1:5])) + 1
		switch in[0] {
		case 'P':
			dst = append(dst, '1', 0, 0, 0, 4)
		case 'B':
			dst = append(dst, '2', 0, 0, 0, 4)
		case 'D':
			if in[headerLen] == 'S' {
				dst = append(dst, benchParamDesc...)
			}
			dst = append(dst, benchRowDesc...)
		case 'E':
			dst = append(append(dst, benchRow...), benchComplete...)
		case 'Q':
			dst = append(append(append(append(dst, benchRowDesc...), benchRow...), benchComplete...), benchReady...)
		case 'S':
			dst = append(dst, benchReady...)
		}
		in = in[n:]
	}
	return dst
}

// runPump passes in through p with h, as one read would, and returns what
// p would write.
func runPump(b *testing.B, p *pump, h handler, in []byte) []byte {
	p.out = p.out[:0]
	p.r, p.w = 0, copy(p.buf, in)
	if _, err := p.process(h); err != nil {
		b.Fatal(err)
	}
	return p.out
}

// benchMasked runs one client batch and the server's answers through a
// masked session's handlers per iteration.
func benchMasked(b *testing.B, batch []byte) {
	s := fuzzSession(nil, nil)
	s.fromClient, s.fromServer = newPump(nil, nil, 1<<20), newPump(nil, nil, 1<<20)
	s.srv.metrics = NewMetrics(nil)
	var q Query = benchQuery{}
	m := newMasking(s, benchPolicy{q: q})
	m.nonBlocking = true
	ch, sh := maskedClient{m}, maskedServer{m, &serverHandler{s: s}}
	var answers []byte
	b.ReportAllocs()
	b.ResetTimer()
	start := cpuTime()
	for i := 0; i < b.N; i++ {
		forwarded := runPump(b, s.fromClient, ch, batch)
		answers = benchServer(answers[:0], forwarded)
		runPump(b, s.fromServer, sh, answers)
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system time in nanoseconds: on a
// shared machine it measures the work where wall time measures the load.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkMaskedExtended is the proxy's work for one pgbench -S -M
// extended transaction of a masked role: Parse, Bind, Describe portal,
// Execute, Sync and their answers, analysis and masking aside.
func BenchmarkMaskedExtended(b *testing.B) {
	var batch []byte
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Parse{Query: "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("48213")}},
		&pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{},
		&pgproto3.Sync{},
	} {
		batch, _ = m.Encode(batch)
	}
	benchMasked(b, batch)
}

// BenchmarkMaskedSimple is BenchmarkMaskedExtended for pgbench -S -M simple.
func BenchmarkMaskedSimple(b *testing.B) {
	batch, _ := (&pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"}).Encode(nil)
	benchMasked(b, batch)
}
