package proxy

import (
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// rejectSQL is what the server runs in place of a rejected message, so
// that the server itself fails it: the transaction is aborted (and a later
// COMMIT rolls back) exactly as for any server error, and in the extended
// protocol the server skips to Sync. The text is constant and holds nothing
// of the client's query; the proxy replaces the error it causes with the
// rejection's own message.
var rejectSQL = raiseSQL("pgveil: statement rejected")

// expect is one server response the proxy waits for, in the order the
// client's messages were forwarded (the protocol answers in order).
type expect struct {
	kind byte   // the client message: 'Q', 'P', 'B', 'D', 'E', 'C', 'S'; 'F' for a fast-path call
	name string // statement (P, D 'S', C 'S') or portal (B, E, D 'P', C 'P') name
	what byte   // for D and C: 'S' statement or 'P' portal
	stmt string // for B: the statement bound
	q    Query  // for Q and P
	idx  int    // for Q: the statement whose results are arriving

	formats []int16 // for B: result formats
	// synthetic messages were added by the proxy: their answers are dropped.
	synthetic bool
	// reject, when set, replaces the error this message's answer carries.
	reject error
	// barrier is set on the Query or Sync whose ReadyForQuery ends a
	// Policy.Barrier.
	barrier bool
	// rw is set for messages about a rewritten statement (ANONYMIZE):
	// its answers are shown to the client as the client's text would be.
	rw    *Rewrite
	count []byte // the count row's value, for rw.Tag
}

// prepared is a protocol-level prepared statement as the server has it.
type prepared struct {
	q      Query
	fields []pgproto3.FieldDescription // from Describe, when known
}

// portal is a bound portal as the server has it.
type portal struct {
	stmt    *prepared
	formats []int16
	fields  []pgproto3.FieldDescription // from Describe portal, when known
}

// masking is the state of a masked session. The client pump adds what it
// forwards; the server pump consumes it as answers arrive. When each pump
// runs on a goroutine of its own, mu guards everything and serializes
// calls to the policy; on an event loop (nonBlocking) both pumps run on
// the loop's thread one message at a time, and the handlers do not lock.
type masking struct {
	s      *session
	policy Policy

	mu      sync.Mutex
	queue   []expect // queue[head:] are unanswered
	head    int
	stmts   names[*prepared]
	portals names[*portal]
	// The rewritten statements and portals as the client defined them,
	// known before the server answers (Bind needs them at once).
	rwStmts   names[*Rewrite]
	rwPortals names[*Rewrite]
	// rwStale are rewritten statements dropped at a Sync behind a
	// transaction pooler (dropRewrites).
	rwStale names[bool]

	// nonBlocking is set while an event loop relays the session: analyses
	// must then come from the policy's cache (see wouldBlock), and mu is
	// not taken. It is set before the loop first runs a handler and never
	// cleared.
	nonBlocking bool
	// mayBlockOnce lets the next analysis block: Warm did not make it
	// cacheable (it failed in a way not worth caching).
	mayBlockOnce bool

	// barriers counts the queued answers that end a Policy.Barrier;
	// bindBarrier is a Bind that began one, waiting for its Sync. failed
	// is set by an ErrorResponse until the next ReadyForQuery.
	barriers    int
	bindBarrier bool
	failed      bool
	// parsed are the client's statements as parsed, by name, and bound
	// binds its portals as bound, known before the server answers (a Bind may
	// follow at once).
	parsed names[*clientStmt]
	binds  names[clientPortal]

	// Reused buffers: descriptions decoded earlier, by their bytes (see
	// fieldsOf); result formats and one name for a policy call (borrowed).
	descs   map[string][]pgproto3.FieldDescription
	formats []int16
	oneName [1]string

	masker  Masker // for the result being streamed, nil when exact
	scrub   bool   // errors of the running statement are scrubbed
	inCopy  bool
	current expect // what the streamed result belongs to
}

func newMasking(s *session, p Policy) *masking {
	return &masking{s: s, policy: p, descs: map[string][]pgproto3.FieldDescription{}}
}

// clientStmt is a statement as the client parsed it.
type clientStmt struct {
	q Query
	// described is set once a Describe of it, or of a portal bound to
	// it, was forwarded: its columns reach the proxy before any rows.
	described bool
}

// clientPortal is a portal as the client bound it.
type clientPortal struct {
	stmt      *clientStmt // nil when the statement was not parsed through the protocol
	described bool        // as clientStmt.described, for this portal
}

// queueKeep is the largest queue whose backing array is kept once empty:
// a long pipeline's is let go.
const queueKeep = 64

// push queues the answer to a forwarded message. The backing array is
// reused: answered entries at the front make room before it grows.
func (m *masking) push(e expect) {
	if m.head > 0 && len(m.queue) == cap(m.queue) {
		n := copy(m.queue, m.queue[m.head:])
		clear(m.queue[n:])
		m.queue, m.head = m.queue[:n], 0
	}
	m.queue = append(m.queue, e)
}

// front returns the oldest unanswered message, or nil.
func (m *masking) front() *expect {
	if m.head == len(m.queue) {
		return nil
	}
	return &m.queue[m.head]
}

func (m *masking) pop() expect {
	e := m.queue[m.head]
	m.queue[m.head] = expect{}
	m.head++
	if m.head == len(m.queue) {
		m.head = 0
		m.queue = m.queue[:0]
		if cap(m.queue) > queueKeep {
			m.queue = nil
		}
	}
	return e
}

// forgetStatement and forgetPortal tell the policy of one name the client
// (re)defined or closed, without allocating.
func (m *masking) forgetStatement(name string) {
	m.oneName[0] = name
	m.policy.Forget(Names{Statements: m.oneName[:]})
}

func (m *masking) forgetPortal(name string) {
	m.oneName[0] = name
	m.policy.Forget(Names{Portals: m.oneName[:]})
}

// fieldsOf remembers up to maxDescs descriptions of at most maxDescBytes
// each, so that an idle session holds little.
const (
	maxDescs     = 16
	maxDescBytes = 1024
)

// fieldsOf returns the columns of a RowDescription. Statements run again
// and again describe the same columns, so a description decoded before
// is returned again, shared: callers must not change it.
func (m *masking) fieldsOf(msg []byte) ([]pgproto3.FieldDescription, error) {
	if f, ok := m.descs[string(msg)]; ok {
		return f, nil
	}
	var rd pgproto3.RowDescription
	if err := rd.Decode(msg[headerLen:]); err != nil {
		return nil, &protocolError{fmt.Errorf("malformed RowDescription: %w", err)}
	}
	fields := make([]pgproto3.FieldDescription, len(rd.Fields))
	for i, f := range rd.Fields {
		f.Name = nil // borrowed from the buffer; not needed
		fields[i] = f
	}
	if len(msg) <= maxDescBytes {
		if len(m.descs) >= maxDescs {
			clear(m.descs)
		}
		m.descs[string(msg)] = fields
	}
	return fields, nil
}

// formatsFor returns, in a reused buffer, the format of each of n columns
// given Bind's result format codes (nil: the formats of fields).
func (m *masking) formatsFor(fields []pgproto3.FieldDescription, codes []int16, fromBind bool) []int16 {
	m.formats = m.formats[:0]
	for i, f := range fields {
		if fromBind {
			m.formats = append(m.formats, resultFormat(codes, i))
		} else {
			m.formats = append(m.formats, f.Format)
		}
	}
	return m.formats
}

// codeOf returns an error's SQLSTATE, 42501 unless it says otherwise.
func codeOf(err error) string {
	var c interface{ Code() string }
	if errors.As(err, &c) {
		return c.Code()
	}
	return "42501"
}

// rejectionMessage renders a rejection as the ErrorResponse the client gets.
func rejectionMessage(dst []byte, err error) []byte {
	e := pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: codeOf(err), Message: err.Error()}
	var h interface{ Hint() string }
	if errors.As(err, &h) {
		e.Hint = h.Hint()
	}
	out, encErr := e.Encode(dst)
	if encErr != nil {
		return appendError(dst, "ERROR", e.Code, "pgveil: statement rejected")
	}
	return out
}

// scrubbedMessage replaces every field of an error or notice that could
// quote data with a generic text naming the SQLSTATE. An error whose text
// cannot quote a value keeps its message and hint (plainerrors.go).
func scrubbedMessage(dst, msg []byte) ([]byte, error) {
	var e pgproto3.ErrorResponse
	if err := e.Decode(msg[headerLen:]); err != nil {
		return dst, &protocolError{fmt.Errorf("malformed error message: %w", err)}
	}
	clean, plain := plainError(&e)
	if !plain || msg[0] != 'E' {
		clean = pgproto3.ErrorResponse{Severity: e.Severity, SeverityUnlocalized: e.SeverityUnlocalized, Code: e.Code,
			Message: fmt.Sprintf("pgveil: the error message (SQLSTATE %s) was withheld because the statement reads protected columns", e.Code)}
	}
	out, err := clean.Encode(dst)
	if msg[0] == 'N' && err == nil {
		out[len(dst)] = 'N'
	}
	return out, err
}

// appendQuery appends a simple Query message.
func appendQuery(dst []byte, sql string) []byte {
	out, _ := (&pgproto3.Query{String: sql}).Encode(dst)
	return out
}

// appendRejectedExtended appends the messages that make the server fail in
// place of a rejected extended-protocol message, and queues their answers.
func (m *masking) appendRejectedExtended(out []byte, err error) []byte {
	out, _ = (&pgproto3.Parse{Query: rejectSQL}).Encode(out)
	out, _ = (&pgproto3.Bind{}).Encode(out)
	out, _ = (&pgproto3.Execute{}).Encode(out)
	m.push(expect{kind: 'P', synthetic: true})
	m.push(expect{kind: 'B', synthetic: true})
	m.push(expect{kind: 'E', reject: err})
	return out
}

// errBarrier refuses a message sent before the answer to a statement that
// may change how names resolve.
var errBarrier = errors.New("pgveil: wait for the answer to the search_path change (or the end of the transaction it was made in) before sending further queries")

// barred reports whether a Policy.Barrier is still open.
func (m *masking) barred() bool { return m.barriers > 0 || m.bindBarrier }

// wouldBlock is returned by a handler on an event loop when a message needs
// blocking work first, never wrapped (it is tested with a type assertion,
// which unlike errors.As costs no allocation on the hot path). The message stays unconsumed; the loop pauses the
// session, runs warm on a goroutine, and handles the message again.
type wouldBlock struct{ warm func() }

func (*wouldBlock) Error() string { return "pgveil: analysis needs blocking work" }

// analyze returns the policy's analysis of sql, without blocking on an
// event loop.
func (m *masking) analyze(sql string) (Query, error) {
	if !m.nonBlocking || m.mayBlockOnce {
		m.mayBlockOnce = false
		return m.policy.Analyze(sql)
	}
	q, err, ok := m.policy.Cached(sql)
	if !ok {
		p := m.policy
		return nil, &wouldBlock{warm: func() { p.Warm(sql) }}
	}
	return q, err
}
