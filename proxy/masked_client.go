package proxy

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"
)

// maskedClient handles client->server traffic of a masked session: every
// Query and Parse is analysed before it is forwarded, and every message
// that the server answers is queued so the answers can be matched.
type maskedClient struct{ m *masking }

func (maskedClient) whole(typ byte) bool {
	switch typ {
	case 'Q', 'P', 'B', 'D', 'E', 'C', 'S', 'F':
		return true
	}
	return false // COPY data, Flush, Terminate: forwarded as they are
}

func (h maskedClient) handle(out, msg []byte) ([]byte, error) {
	m := h.m
	if msg[0] == 'S' {
		m.s.startQuery()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch msg[0] {
	case 'Q':
		return m.query(out, msg)
	case 'P':
		return m.parse(out, msg)
	case 'B':
		return m.bind(out, msg)
	case 'D', 'C':
		return m.describeOrClose(out, msg)
	case 'E':
		return m.execute(out, msg)
	case 'S':
		m.push(expect{kind: 'S', barrier: m.bindBarrier})
		if m.bindBarrier {
			m.barriers++
			m.bindBarrier = false
		}
	case 'F':
		// A fast-path call runs any function by OID, out of the analyser's sight.
		m.s.startQuery()
		m.push(expect{kind: 'Q', reject: errFastPath})
		return appendQuery(out, rejectSQL), nil
	}
	return append(out, msg...), nil
}

var errFastPath = errors.New("pgveil: fast-path function calls are not allowed for masked roles")

// cstring splits a NUL-terminated string off the front of b.
func cstring(b []byte) (string, []byte, error) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], nil
		}
	}
	return "", nil, &protocolError{errors.New("missing string terminator")}
}

func (m *masking) query(out, msg []byte) ([]byte, error) {
	sql, _, err := cstring(msg[headerLen:])
	if err != nil {
		return out, err
	}
	q, err := m.analyzeUnbarred(sql)
	var wb *wouldBlock
	if errors.As(err, &wb) {
		return out, err
	}
	m.s.startQuery()
	if err != nil {
		m.s.rejected()
		m.push(expect{kind: 'Q', reject: err})
		return appendQuery(out, rejectSQL), nil
	}
	if rw := q.Rewrite(); rw != nil {
		return m.rewriteQuery(out, q, rw), nil
	}
	barrier := m.policy.Barrier(q)
	if barrier {
		m.barriers++
	}
	m.push(expect{kind: 'Q', q: q, barrier: barrier})
	if text := q.Text(); text != "" {
		return appendQuery(out, text), nil
	}
	return append(out, msg...), nil
}

// rewriteQuery runs a rewritten statement in place of a simple Query: as
// an extended-protocol exchange, so that its values travel as parameters.
// The client sees the answers of a simple Query.
func (m *masking) rewriteQuery(out []byte, q Query, rw *Rewrite) []byte {
	out, _ = (&pgproto3.Parse{Query: rw.SQL}).Encode(out)
	out, _ = (&pgproto3.Bind{Parameters: textParams(nil, rw.Params)}).Encode(out)
	out, _ = (&pgproto3.Describe{ObjectType: 'P'}).Encode(out)
	out, _ = (&pgproto3.Execute{}).Encode(out)
	out, _ = (&pgproto3.Sync{}).Encode(out)
	m.push(expect{kind: 'P', synthetic: true})
	m.push(expect{kind: 'B', synthetic: true})
	m.push(expect{kind: 'D', what: 'P', synthetic: rw.Tag != "", rw: rw})
	m.push(expect{kind: 'E', q: q, rw: rw})
	m.push(expect{kind: 'S'})
	return out
}

// textParams appends the values as text-format parameters.
func textParams(dst [][]byte, values []string) [][]byte {
	for _, v := range values {
		dst = append(dst, []byte(v))
	}
	return dst
}

func (m *masking) parse(out, msg []byte) ([]byte, error) {
	var p pgproto3.Parse
	if err := p.Decode(msg[headerLen:]); err != nil {
		return out, &protocolError{fmt.Errorf("malformed Parse: %w", err)}
	}
	q, err := m.analyzeUnbarred(p.Query)
	var wb *wouldBlock
	if errors.As(err, &wb) {
		return out, err
	}
	delete(m.parsed, p.Name)
	if err != nil {
		m.s.rejected()
		return m.appendRejectedExtended(out, err), nil
	}
	m.parsed[p.Name] = q
	m.push(expect{kind: 'P', name: p.Name, q: q})
	delete(m.rwStmts, p.Name)
	if rw := q.Rewrite(); rw != nil {
		m.rwStmts[p.Name] = rw
		p.Query = rw.SQL
		out, _ = p.Encode(out)
	} else if text := q.Text(); text != "" {
		p.Query = text
		out, _ = p.Encode(out)
	} else {
		out = append(out, msg...)
	}
	// Learn the result's column types even when the client never asks:
	// rows of a later Execute are masked by type.
	out, _ = (&pgproto3.Describe{ObjectType: 'S', Name: p.Name}).Encode(out)
	m.push(expect{kind: 'D', what: 'S', name: p.Name, synthetic: true})
	return out, nil
}

func (m *masking) bind(out, msg []byte) ([]byte, error) {
	var b pgproto3.Bind
	if err := b.Decode(msg[headerLen:]); err != nil {
		return out, &protocolError{fmt.Errorf("malformed Bind: %w", err)}
	}
	if err := m.bindable(b.PreparedStatement); err != nil {
		m.s.rejected()
		return m.appendRejectedExtended(out, err), nil
	}
	formats := make([]int16, len(b.ResultFormatCodes))
	copy(formats, b.ResultFormatCodes)
	m.push(expect{kind: 'B', name: b.DestinationPortal, stmt: b.PreparedStatement, formats: formats})
	rw := m.rwStmts[b.PreparedStatement]
	m.rwPortals[b.DestinationPortal] = rw
	if rw == nil {
		delete(m.rwPortals, b.DestinationPortal)
		return append(out, msg...), nil
	}
	b.ParameterFormatCodes = paramFormats(b.ParameterFormatCodes, len(b.Parameters), len(rw.Params))
	b.Parameters = textParams(b.Parameters, rw.Params)
	out, err := b.Encode(out)
	if err != nil {
		return out, &protocolError{err}
	}
	return out, nil
}

// paramFormats extends Bind's parameter format codes for extra text
// parameters after n of the client's.
func paramFormats(codes []int16, n, extra int) []int16 {
	switch {
	case len(codes) == 0 || extra == 0:
		return codes
	case len(codes) == 1:
		all := make([]int16, n, n+extra)
		for i := range all {
			all[i] = codes[0]
		}
		codes = all
	}
	return append(codes, make([]int16, extra)...)
}

func (m *masking) describeOrClose(out, msg []byte) ([]byte, error) {
	body := msg[headerLen:]
	if len(body) < 2 || (body[0] != 'S' && body[0] != 'P') {
		return out, &protocolError{fmt.Errorf("malformed %q message", msg[0])}
	}
	name, _, err := cstring(body[1:])
	if err != nil {
		return out, err
	}
	e := expect{kind: msg[0], what: body[0], name: name}
	switch {
	case body[0] == 'S':
		e.rw = m.rwStmts[name]
	default:
		e.rw = m.rwPortals[name]
	}
	if msg[0] == 'C' && body[0] == 'S' {
		delete(m.rwStmts, name)
		delete(m.parsed, name)
	} else if msg[0] == 'C' {
		delete(m.rwPortals, name)
	}
	m.push(e)
	return append(out, msg...), nil
}

// analyzeUnbarred analyses a Query's or Parse's text, refusing it while a
// Policy.Barrier is open.
func (m *masking) analyzeUnbarred(sql string) (Query, error) {
	if m.barred() {
		return nil, errBarrier
	}
	return m.analyze(sql)
}

// bindable checks a Bind of a statement the client parsed, and opens a
// barrier when running it may change how names resolve.
func (m *masking) bindable(name string) error {
	if m.barred() {
		return errBarrier
	}
	q := m.parsed[name]
	if q == nil {
		return nil // unknown to the server too, or the proxy's own
	}
	if err := m.policy.Bindable(q); err != nil {
		return err
	}
	m.bindBarrier = m.policy.Barrier(q)
	return nil
}

func (m *masking) execute(out, msg []byte) ([]byte, error) {
	name, _, err := cstring(msg[headerLen:])
	if err != nil {
		return out, err
	}
	m.push(expect{kind: 'E', name: name, rw: m.rwPortals[name]})
	return append(out, msg...), nil
}
