package proxy

import "github.com/jackc/pgx/v5/pgproto3"

// Guard is the seam between the proxy, which knows the wire protocol, and
// the masking layer, which knows SQL meaning. The proxy calls it once per
// session; a session it returns no Policy for is relayed untouched.
type Guard interface {
	// Open is called after the server has accepted the login and before the
	// client sees its first ReadyForQuery. exec runs one query on the
	// session's own upstream connection and returns its rows as text; it
	// is valid only during Open. Open returns (nil, nil) for a session that
	// is not masked. An error refuses the session: the client gets it as a
	// FATAL error (SQLSTATE 42501 unless the error has a Code method).
	Open(info SessionInfo, exec func(sql string) ([][]string, error)) (Policy, error)
	// Screen is called with the text of every Query and Parse of a session
	// Open returned no Policy for. It must be cheap (no parsing): it runs on
	// the hot path. sql is borrowed for the call. An error refuses the
	// message with SQLSTATE 42501 and the error's text.
	Screen(user string, sql []byte) error
}

// SessionInfo describes a session whose login the server accepted.
type SessionInfo struct {
	User     string
	Database string
	// Params are the client's startup parameters (options, replication...).
	Params map[string]string
}

// Policy is the masking layer's side of one masked session.
//
// Concurrency: the proxy calls a Policy's methods one at a time, never
// concurrently, in the order the messages they concern were sent or
// received. Memory: slices passed in (fields, formats) are borrowed for the
// call only; a Policy must copy what it keeps.
type Policy interface {
	// Analyze is called for every Query and Parse message, in the order the
	// client sent them, before anything is forwarded. An error rejects the
	// message: nothing of it reaches the server, and the client gets an
	// ErrorResponse with the error's text, its Code() (default 42501) and
	// its Hint() when it has those methods.
	Analyze(sql string) (Query, error)
	// Cached is Analyze for an event loop, which must not block: ok is
	// false when the analysis needs work that may block (parsing, catalog
	// reads). The proxy then calls Warm on another goroutine, and Cached
	// again once it returns.
	Cached(sql string) (q Query, err error, ok bool)
	// Warm does the blocking part of analysing sql, so that Cached finds
	// it. Unlike the other methods, it runs concurrently with them.
	Warm(sql string)
	// Result returns the masker for the rows of statement stmt of q, given
	// the RowDescription fields and the format of each column as the client
	// will receive them. A nil Masker means the rows pass unchanged.
	Result(q Query, stmt int, fields []pgproto3.FieldDescription, formats []int16) (Masker, error)
	// CopyResult is Result for COPY ... TO STDOUT.
	CopyResult(q Query, stmt int) (Masker, error)
	// Completed is called when statement stmt of q completed successfully
	// (CommandComplete), so that the policy can track cursors and SQL
	// prepared statements as the server does. It returns the names the
	// statement defined or dropped (DECLARE, CLOSE, PREPARE, DEALLOCATE,
	// DISCARD): SQL cursors and protocol portals share one namespace, SQL
	// and protocol prepared statements another, so the proxy stops trusting
	// what it knew of those names.
	Completed(q Query, stmt int) Names
	// Forget is told the names the client (re)defined or closed through the
	// protocol (Parse, Bind, Close), for the same reason the other way.
	Forget(n Names)
	// ScrubErrors reports whether errors and notices raised while statement
	// stmt of q runs may quote protected values and must be scrubbed. q is
	// nil for a statement the proxy cannot tell (defined through SQL).
	ScrubErrors(q Query, stmt int) bool
	// Ready is called at every ReadyForQuery with its transaction status
	// ('I', 'T' or 'E') and whether an ErrorResponse came since the
	// previous one, so that the policy can follow settings the server
	// keeps or rolls back with the transaction (search_path).
	Ready(status byte, failed bool)
	// Barrier reports whether q (a Query's text, or a statement being
	// bound) may change how the server resolves names by the time its
	// ReadyForQuery arrives. Until then the proxy refuses every Query,
	// Parse and Bind: they would be judged against a state the server
	// may no longer have.
	Barrier(q Query) bool
	// Bindable is called for every Bind of a prepared statement the
	// client parsed, before it is forwarded; an error refuses the Bind.
	Bindable(q Query) error
	// Close releases the session's resources.
	Close()
}

// Query is a Policy's analysis of one Query or Parse message; the proxy
// hands it back, and runs its Rewrite in place of the client's text when
// it has one.
type Query interface {
	// Statements is the number of statements in the message's text.
	Statements() int
	// Rewrite returns what the server runs instead of the client's text,
	// or nil to forward the text as it is.
	Rewrite() *Rewrite
	// Text returns a text with the same results as the client's that the
	// server runs in its place, in the same message, or "" to forward the
	// client's own. Unlike a Rewrite, the Policy's masking applies to it.
	Text() string
}

// Rewrite replaces one client statement (a pgveil command such as
// ANONYMIZE) by one SQL statement with bind parameters. The client's own
// parameters ($1..$n) keep their numbers; Params follow them.
type Rewrite struct {
	SQL    string
	Params []string // text-format values of $n+1, $n+2, ...
	// Tag, when set, means the statement returns one row with one integer
	// column, which the client receives as the command tag "Tag <n>"
	// instead of a row. When empty, its rows reach the client.
	Tag string
	// ClientParams is n, the number of parameters the client's text uses.
	ClientParams int
	// Notice, when set, is sent to the client after the statement succeeds.
	Notice string
	// Done, when set with Tag, is called with the count of the tag when
	// the statement completes.
	Done func(count int64)
}

// Masker masks the rows of one result.
type Masker interface {
	// DataRow appends the masked form of a DataRow body (the message
	// without its 5-byte header) to dst.
	DataRow(dst, body []byte) ([]byte, error)
	// CopyLine appends the masked form of one COPY data row to dst.
	CopyLine(dst, line []byte) ([]byte, error)
	// Flush is called when a result ends (or another starts); the masker
	// may be handed out again for a later result.
	Flush()
}

// Names are portal (cursor) and prepared statement names.
type Names struct {
	Portals, Statements       []string
	AllPortals, AllStatements bool
}
