package proxy

import (
	"encoding/binary"
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
	if !m.nonBlocking {
		m.mu.Lock()
		defer m.mu.Unlock()
	}
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
		if m.s.opts.TransactionPooling {
			m.dropRewrites()
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

var errStaleRewrite = errors.New("pgveil: behind a transaction pooler, a prepared ANONYMIZE must be executed before the next Sync; prepare it again")

// dropRewrites forgets the rewritten statements (ANONYMIZE) at a Sync
// when the upstream pools transactions: what follows may run on another
// server connection, where the name may be another session's statement,
// and the proxy would read its answer as a count. A later Bind of such a
// name is rejected; the other names are distrusted when the server says
// idle (forgetServerState).
func (m *masking) dropRewrites() {
	for name := range m.rwStmts.all() {
		m.rwStale.set(name, true)
	}
	m.rwStmts.clear()
	m.rwPortals.clear()
}

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
	if _, ok := err.(*wouldBlock); ok {
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
	p, err := readParse(msg[headerLen:])
	if err != nil {
		return out, err
	}
	q, err := m.analyzeUnbarred(p.Query)
	if _, ok := err.(*wouldBlock); ok {
		return out, err
	}
	m.parsed.del(p.Name)
	if err != nil {
		m.s.rejected()
		return m.appendRejectedExtended(out, err), nil
	}
	m.parsed.set(p.Name, &clientStmt{q: q})
	m.push(expect{kind: 'P', name: p.Name, q: q})
	m.rwStmts.del(p.Name)
	m.rwStale.del(p.Name)
	sql := q.Text()
	if rw := q.Rewrite(); rw != nil {
		m.rwStmts.set(p.Name, rw)
		sql = rw.SQL
	}
	if sql == "" {
		return append(out, msg...), nil
	}
	if err := p.Decode(msg[headerLen:]); err != nil { // for its parameter types
		return out, &protocolError{fmt.Errorf("malformed Parse: %w", err)}
	}
	p.Query = sql
	out, _ = p.Encode(out)
	return out, nil
}

// readParse reads a Parse's name and text, checking the rest of its
// structure; its parameter types are left for when they are needed.
func readParse(body []byte) (pgproto3.Parse, error) {
	var p pgproto3.Parse
	var err error
	if p.Name, body, err = cstring(body); err != nil {
		return p, err
	}
	if p.Query, body, err = cstring(body); err != nil {
		return p, err
	}
	if n, rest, ok := int16Count(body, 4); !ok || len(rest) != 4*n {
		return p, &protocolError{errors.New("malformed Parse")}
	}
	return p, nil
}

func (m *masking) bind(out, msg []byte) ([]byte, error) {
	b, err := readBind(msg[headerLen:])
	if err != nil {
		return out, err
	}
	if m.rwStale.at(b.stmt) {
		return m.appendRejectedExtended(out, errStaleRewrite), nil
	}
	if err := m.bindable(b.stmt); err != nil {
		m.s.rejected()
		return m.appendRejectedExtended(out, err), nil
	}
	m.push(expect{kind: 'B', name: b.portal, stmt: b.stmt, formats: b.formats})
	if st := m.parsed.at(b.stmt); st != nil {
		m.binds.set(b.portal, clientPortal{stmt: st, described: st.described})
	} else {
		m.binds.del(b.portal)
	}
	rw := m.rwStmts.at(b.stmt)
	m.rwPortals.set(b.portal, rw)
	if rw == nil {
		m.rwPortals.del(b.portal)
		return append(out, msg...), nil
	}
	return m.rewriteBind(out, msg, rw)
}

// rewriteBind appends a Bind of a rewritten statement: the client's
// parameters, then the rewrite's own.
func (m *masking) rewriteBind(out, msg []byte, rw *Rewrite) ([]byte, error) {
	var b pgproto3.Bind
	if err := b.Decode(msg[headerLen:]); err != nil {
		return out, &protocolError{fmt.Errorf("malformed Bind: %w", err)}
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
		e.rw = m.rwStmts.at(name)
	default:
		e.rw = m.rwPortals.at(name)
	}
	switch {
	case msg[0] == 'C' && body[0] == 'S':
		m.rwStmts.del(name)
		m.parsed.del(name)
		m.rwStale.del(name)
	case msg[0] == 'C':
		m.rwPortals.del(name)
		m.binds.del(name)
	default:
		m.describing(body[0], name)
	}
	m.push(e)
	return append(out, msg...), nil
}

// describing notes a Describe the client sent: the columns it reports
// arrive before the rows of any later Execute of that statement or portal.
func (m *masking) describing(what byte, name string) {
	if what == 'S' {
		if st := m.parsed.at(name); st != nil {
			st.described = true
		}
		return
	}
	if p, ok := m.binds.get(name); ok {
		p.described = true
		m.binds.set(name, p)
		if p.stmt != nil {
			p.stmt.described = true // masked_server.go's described keeps them for the statement too
		}
	}
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
	st := m.parsed.at(name)
	if st == nil {
		return nil // unknown to the server too, or the proxy's own
	}
	if err := m.policy.Bindable(st.q); err != nil {
		return err
	}
	m.bindBarrier = m.policy.Barrier(st.q)
	return nil
}

// execute forwards an Execute. Rows are masked by their column types, so
// when nothing the client sent will have described the portal, a Describe
// of it goes first and its answer is kept by the proxy. Asking only then,
// not after every Parse, spares the server and the proxy a description per
// statement for clients that describe their own (most do).
func (m *masking) execute(out, msg []byte) ([]byte, error) {
	name, _, err := cstring(msg[headerLen:])
	if err != nil {
		return out, err
	}
	rw := m.rwPortals.at(name)
	if p, ok := m.binds.get(name); ok && !p.described && rw == nil {
		p.described = true
		m.binds.set(name, p)
		out, _ = (&pgproto3.Describe{ObjectType: 'P', Name: name}).Encode(out)
		m.push(expect{kind: 'D', what: 'P', name: name, synthetic: true})
	}
	m.push(expect{kind: 'E', name: name, rw: rw})
	return append(out, msg...), nil
}

// bindHeader is what the proxy needs of a Bind: its names and result
// formats, read in place without decoding the parameters.
type bindHeader struct {
	portal, stmt string
	formats      []int16 // nil when the Bind has none
}

// readBind reads a Bind's body, checking its structure as the server will.
func readBind(body []byte) (bindHeader, error) {
	var b bindHeader
	var err error
	if b.portal, body, err = cstring(body); err != nil {
		return b, err
	}
	if b.stmt, body, err = cstring(body); err != nil {
		return b, err
	}
	n, body, ok := int16Count(body, 2)
	if !ok {
		return b, errMalformedBind
	}
	body = body[2*n:]
	if n, body, ok = int16Count(body, 0); !ok {
		return b, errMalformedBind
	}
	for ; n > 0; n-- {
		if len(body) < 4 {
			return b, errMalformedBind
		}
		size := int32(binary.BigEndian.Uint32(body))
		body = body[4:]
		if size < -1 || int(size) > len(body) {
			return b, errMalformedBind
		}
		body = body[max(size, 0):]
	}
	if n, body, ok = int16Count(body, 2); !ok || len(body) != 2*n {
		return b, errMalformedBind
	}
	if n > 0 {
		b.formats = make([]int16, n)
		for i := range b.formats {
			b.formats[i] = int16(binary.BigEndian.Uint16(body[2*i:]))
		}
	}
	return b, nil
}

var errMalformedBind = &protocolError{errors.New("malformed Bind")}

// int16Count reads a count and checks that count items of size bytes
// follow it.
func int16Count(b []byte, size int) (int, []byte, bool) {
	if len(b) < 2 {
		return 0, nil, false
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	return n, b, len(b) >= n*size
}
