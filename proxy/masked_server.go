package proxy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgproto3"
)

// maskedServer handles server->client traffic of a masked session: it
// matches each answer to the client message it answers, masks rows, and
// scrubs or replaces errors.
type maskedServer struct {
	m    *masking
	base *serverHandler // shared bookkeeping (errors, ReadyForQuery)
}

// whole: every message is inspected; rows are masked in place.
func (maskedServer) whole(byte) bool { return true }

func (h maskedServer) handle(out, msg []byte) ([]byte, error) {
	m := h.m
	if !m.nonBlocking {
		m.mu.Lock()
		defer m.mu.Unlock()
	}
	switch msg[0] {
	case 'D':
		return m.dataRow(out, msg)
	case 'd':
		return m.copyData(out, msg)
	case 'T':
		return m.rowDescription(out, msg)
	case '1', '2', '3', 'n', 't':
		return m.protocolAnswer(out, msg)
	case 'C', 'I', 's':
		return m.commandEnd(out, msg)
	case 'H':
		return m.copyOut(out, msg)
	case 'E':
		h.base.s.noteError(msg)
		m.failed = true
		return m.errorResponse(out, msg)
	case 'N':
		if e := m.front(); m.scrub || (e != nil && m.scrubFor(e)) {
			return scrubbedMessage(out, msg)
		}
	case 'Z':
		h.base.s.endQuery()
		m.readyForQuery(msg)
		if h.base.s.opts.TransactionPooling && len(msg) > headerLen && msg[headerLen] == 'I' {
			m.forgetServerState()
		}
	case 'A':
		return withoutPayload(out, msg)
	}
	return append(out, msg...), nil
}

// protocolAnswer handles ParseComplete, BindComplete, CloseComplete,
// NoData and ParameterDescription.
func (m *masking) protocolAnswer(out, msg []byte) ([]byte, error) {
	e := m.front()
	if e == nil {
		return out, &protocolError{fmt.Errorf("unexpected message %q from upstream", msg[0])}
	}
	if msg[0] == 't' { // a RowDescription or NoData follows for the same Describe
		if e.synthetic {
			return out, nil
		}
		if e.rw != nil {
			return clientParamDescription(out, msg, e.rw.ClientParams)
		}
		return append(out, msg...), nil
	}
	done := m.pop()
	switch {
	case done.synthetic && msg[0] == '1':
		m.stmts.del("") // the server's unnamed statement is now the proxy's
	case done.synthetic && msg[0] == '2':
		m.portals.del("")
	case msg[0] == '1':
		m.stmts.set(done.name, &prepared{q: done.q})
		m.forgetStatement(done.name)
	case msg[0] == '2':
		m.bound(done)
		m.forgetPortal(done.name)
	case msg[0] == '3':
		m.closed(done)
		if done.what == 'S' {
			m.forgetStatement(done.name)
		} else {
			m.forgetPortal(done.name)
		}
	}
	if done.synthetic {
		return out, nil
	}
	return append(out, msg...), nil
}

// bound records a portal as the server now has it.
func (m *masking) bound(b expect) {
	p := portal{stmt: m.stmts.at(b.stmt), formats: b.formats}
	if old := m.portals.at(b.name); old != nil {
		*old = p // nothing else holds a portal: reuse it
		return
	}
	m.portals.set(b.name, &p)
}

func (m *masking) closed(c expect) {
	if c.what == 'S' {
		m.stmts.del(c.name)
	} else {
		m.portals.del(c.name)
	}
}

// rowDescription starts a result: for a simple query it chooses the
// masker; for a Describe it records the columns for later Executes.
func (m *masking) rowDescription(out, msg []byte) ([]byte, error) {
	e := m.front()
	if e == nil {
		return out, &protocolError{fmt.Errorf("unexpected RowDescription from upstream")}
	}
	fields, err := m.fieldsOf(msg)
	if err != nil {
		return out, err
	}
	switch e.kind {
	case 'D':
		done := m.pop()
		m.described(done, fields)
		if done.synthetic {
			return out, nil
		}
		if done.rw != nil && done.rw.Tag != "" { // the count row is not the client's
			return append(out, 'n', 0, 0, 0, 4), nil
		}
	case 'Q':
		if err := m.startResult(*e, e.idx, fields, m.formatsFor(fields, nil, false)); err != nil {
			return out, err
		}
	}
	return append(out, msg...), nil
}

// described keeps the columns a Describe reported. A portal's are its
// statement's too (formats aside, which come from the Bind): a later
// portal of the statement that is not described itself is masked by them.
func (m *masking) described(d expect, fields []pgproto3.FieldDescription) {
	if d.what == 'S' {
		if p := m.stmts.at(d.name); p != nil {
			p.fields = fields
		}
	} else if p := m.portals.at(d.name); p != nil {
		p.fields = fields
		if p.stmt != nil && p.stmt.fields == nil {
			p.stmt.fields = fields
		}
	}
}

// startResult chooses the masker for the result of statement idx of e.
func (m *masking) startResult(e expect, idx int, fields []pgproto3.FieldDescription, formats []int16) error {
	m.current = e
	m.dropMasker()
	if e.q == nil {
		return nil
	}
	mk, err := m.policy.Result(e.q, idx, fields, formats)
	if err != nil {
		return err
	}
	m.masker = mk
	m.scrub = m.policy.ScrubErrors(e.q, idx)
	return nil
}

// startExecute prepares the masker for the rows of an Execute.
func (m *masking) startExecute(e *expect) error {
	p := m.portals.at(e.name)
	if p == nil || p.stmt == nil || p.stmt.q == nil {
		// A portal or statement defined through SQL (DECLARE, PREPARE), or
		// one whose name SQL reused: its rows are not known, so every
		// value is withheld.
		m.current = *e
		m.masker = nullRows{}
		m.scrub = true
		return nil
	}
	fields := p.fields
	if fields == nil {
		fields = p.stmt.fields
	}
	e.q = p.stmt.q
	return m.startResult(*e, 0, fields, m.formatsFor(fields, p.formats, true))
}

// resultFormat is the format of column i given Bind's result format codes.
func resultFormat(codes []int16, i int) int16 {
	switch len(codes) {
	case 0:
		return 0
	case 1:
		return codes[0]
	}
	if i < len(codes) {
		return codes[i]
	}
	return 0
}

// dataRow masks one row of the current result.
func (m *masking) dataRow(out, msg []byte) ([]byte, error) {
	if e := m.front(); e != nil && e.kind == 'E' && e.rw != nil {
		if e.rw.Tag == "" {
			return append(out, msg...), nil // EXPLAIN of a pgveil command: no data of any row
		}
		e.count = countValue(msg)
		return out, nil
	}
	if e := m.front(); e != nil && e.kind == 'E' && m.current.kind != 'E' {
		if err := m.startExecute(e); err != nil {
			return out, err
		}
	}
	if m.masker == nil {
		return append(out, msg...), nil
	}
	return rewriteBody(out, msg, m.masker.DataRow)
}

// copyOut starts a COPY TO STDOUT result.
func (m *masking) copyOut(out, msg []byte) ([]byte, error) {
	e := m.front()
	if e != nil && e.kind == 'E' && m.current.kind != 'E' {
		if err := m.startExecute(e); err != nil {
			return out, err
		}
	} else if e != nil && e.kind == 'Q' {
		m.current = *e
	}
	m.inCopy = true
	m.dropMasker()
	if m.current.q == nil {
		// A COPY of a statement the proxy cannot tell (its name distrusted
		// behind a transaction pooler): its rows are refused, never passed.
		m.masker = nullRows{}
		m.scrub = true
	} else {
		idx := m.current.idx
		mk, err := m.policy.CopyResult(m.current.q, idx)
		if err != nil {
			return out, err
		}
		m.masker = mk
		m.scrub = m.policy.ScrubErrors(m.current.q, idx)
	}
	return append(out, msg...), nil
}

// copyData masks one row of a COPY TO STDOUT.
func (m *masking) copyData(out, msg []byte) ([]byte, error) {
	if !m.inCopy || m.masker == nil {
		return append(out, msg...), nil
	}
	return rewriteBody(out, msg, m.masker.CopyLine)
}

// commandEnd handles CommandComplete, EmptyQueryResponse and
// PortalSuspended: the end of one statement's result.
func (m *masking) commandEnd(out, msg []byte) ([]byte, error) {
	e := m.front()
	if e == nil {
		return out, &protocolError{fmt.Errorf("unexpected message %q from upstream", msg[0])}
	}
	switch e.kind {
	case 'Q':
		if msg[0] == 'C' && e.q != nil {
			m.distrust(m.policy.Completed(e.q, e.idx))
		}
		e.idx++
	case 'E':
		done := m.pop()
		if done.rw != nil && done.rw.Tag != "" && msg[0] == 'C' {
			m.endResult()
			return rewrittenTag(out, done), nil
		}
		if msg[0] == 'C' {
			if p := m.portals.at(done.name); p != nil && p.stmt != nil && p.stmt.q != nil {
				m.distrust(m.policy.Completed(p.stmt.q, 0))
			}
		}
	}
	m.endResult()
	return append(out, msg...), nil
}

// dropMasker flushes the current masker and forgets it.
func (m *masking) dropMasker() {
	if m.masker != nil {
		m.masker.Flush()
		m.masker = nil
	}
}

func (m *masking) endResult() {
	m.dropMasker()
	m.scrub = false
	m.inCopy = false
	m.current = expect{}
}

// errorResponse replaces the error of a rejected message, scrubs errors of
// statements that read protected columns, and drops the answers the
// server will now skip (up to Sync).
func (m *masking) errorResponse(out, msg []byte) ([]byte, error) {
	e := m.front()
	if e == nil {
		return append(out, msg...), nil // e.g. FATAL on shutdown, between queries
	}
	scrub := m.scrub || m.scrubFor(e)
	reject := e.reject
	if e.kind != 'Q' { // extended protocol: the server skips to Sync
		for m.front() != nil && m.front().kind != 'S' {
			m.pop()
		}
	}
	m.endResult()
	switch {
	case reject != nil:
		return rejectionMessage(out, reject), nil
	case scrub:
		return scrubbedMessage(out, msg)
	}
	return append(out, msg...), nil
}

// scrubFor reports whether an error answering e may quote protected data.
func (m *masking) scrubFor(e *expect) bool {
	switch {
	case e.q != nil && e.kind == 'Q':
		return e.idx < e.q.Statements() && m.policy.ScrubErrors(e.q, e.idx)
	case e.q != nil:
		return m.policy.ScrubErrors(e.q, 0)
	case e.kind == 'B':
		return m.scrubStatement(m.stmts.at(e.stmt))
	case e.kind == 'E':
		if p := m.portals.at(e.name); p != nil {
			return m.scrubStatement(p.stmt)
		}
		return m.policy.ScrubErrors(nil, 0)
	}
	return false
}

// scrubStatement asks the policy about a prepared statement; one the proxy
// cannot tell (defined through SQL, or its name reused) is asked about as
// nil, so that the policy fails closed for a masked session.
func (m *masking) scrubStatement(p *prepared) bool {
	if p == nil || p.q == nil {
		return m.policy.ScrubErrors(nil, 0)
	}
	return m.policy.ScrubErrors(p.q, 0)
}

// readyForQuery ends a simple query or an extended-protocol sync.
func (m *masking) readyForQuery(msg []byte) {
	if e := m.front(); e != nil && (e.kind == 'Q' || e.kind == 'S') {
		if m.pop().barrier {
			m.barriers--
		}
	}
	m.endResult()
	if len(msg) > headerLen {
		m.policy.Ready(msg[headerLen], m.failed)
	}
	m.failed = false
}

// clientParamDescription keeps the first n parameter types of a
// ParameterDescription: the ones the client's own text declared.
func clientParamDescription(out, msg []byte, n int) ([]byte, error) {
	var pd pgproto3.ParameterDescription
	if err := pd.Decode(msg[headerLen:]); err != nil {
		return out, &protocolError{err}
	}
	if len(pd.ParameterOIDs) > n {
		pd.ParameterOIDs = pd.ParameterOIDs[:n]
	}
	return pd.Encode(out)
}

// countValue returns the text of a one-column count row (text or int8
// binary format), or nil.
func countValue(msg []byte) []byte {
	var d pgproto3.DataRow
	if d.Decode(msg[headerLen:]) != nil || len(d.Values) != 1 || d.Values[0] == nil {
		return nil
	}
	v := d.Values[0]
	if len(v) == 8 && (v[0] == 0 || v[0] == 0xff) && !isDigits(v) { // binary int8
		return strconv.AppendInt(nil, int64(binary.BigEndian.Uint64(v)), 10)
	}
	return bytes.Clone(v)
}

func isDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// rewrittenTag is the CommandComplete of a rewritten statement, after its
// notice when it has one.
func rewrittenTag(out []byte, e expect) []byte {
	if e.rw.Notice != "" {
		n := pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: e.rw.Notice}
		out, _ = n.Encode(out)
	}
	count := e.count
	if count == nil {
		count = []byte("0")
	}
	if e.rw.Done != nil {
		n, _ := strconv.ParseInt(string(count), 10, 64)
		e.rw.Done(n)
	}
	out, _ = (&pgproto3.CommandComplete{CommandTag: append([]byte(e.rw.Tag+" "), count...)}).Encode(out)
	return out
}

// withoutPayload passes a notification with its payload withheld: anyone
// may notify a channel a masked session listens on, with any value.
func withoutPayload(out, msg []byte) ([]byte, error) {
	var n pgproto3.NotificationResponse
	if err := n.Decode(msg[headerLen:]); err != nil {
		return out, &protocolError{err}
	}
	n.Payload = ""
	return n.Encode(out)
}

// distrust forgets what the proxy knew of names a SQL statement defined or
// dropped: a protocol Bind or Execute of them then withholds every value.
func (m *masking) distrust(n Names) {
	if len(n.Statements) == 0 && len(n.Portals) == 0 && !n.AllStatements && !n.AllPortals {
		return
	}
	unknown := &prepared{}
	for _, name := range n.Statements {
		m.stmts.set(name, unknown)
	}
	for _, name := range n.Portals {
		m.portals.set(name, &portal{stmt: unknown})
	}
	if n.AllStatements {
		for name := range m.stmts.all() {
			m.stmts.set(name, unknown)
		}
	}
	if n.AllPortals {
		for name := range m.portals.all() {
			m.portals.set(name, &portal{stmt: unknown})
		}
	}
}

// forgetServerState distrusts every statement and portal name, and has
// the policy forget its cursors and SQL prepared statements. Behind a
// transaction pooler an idle session's server connection may go to
// another client: the next transaction may run on a server connection
// where another session prepared the same name as another statement, and
// masking it by this session's definition would leak. A name used in a
// later transaction then withholds every value.
func (m *masking) forgetServerState() {
	all := Names{AllStatements: true, AllPortals: true}
	m.distrust(all)
	m.policy.Forget(all)
}

// nullRows withholds every value of rows the proxy cannot tell the shape
// of: each column becomes NULL, which every type allows.
type nullRows struct{}

func (nullRows) DataRow(dst, body []byte) ([]byte, error) {
	if len(body) < 2 {
		return dst, errors.New("malformed DataRow")
	}
	dst = append(dst, body[0], body[1])
	for n := int(binary.BigEndian.Uint16(body)); n > 0; n-- {
		dst = append(dst, 0xff, 0xff, 0xff, 0xff)
	}
	return dst, nil
}

func (nullRows) CopyLine(dst, line []byte) ([]byte, error) {
	return dst, errors.New("pgveil: COPY from a portal whose statement is unknown")
}

func (nullRows) Flush() {}

// rewriteBody appends msg with its body replaced by what mask appends, and
// the length word fixed to match.
func rewriteBody(out, msg []byte, mask func(dst, body []byte) ([]byte, error)) ([]byte, error) {
	start := len(out)
	out = append(out, msg[:headerLen]...)
	out, err := mask(out, msg[headerLen:])
	if err != nil {
		return out, &protocolError{err}
	}
	binary.BigEndian.PutUint32(out[start+1:], uint32(len(out)-start-1))
	return out, nil
}
