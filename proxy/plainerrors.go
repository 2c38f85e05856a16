package proxy

import (
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Errors of a statement that reads protected columns are scrubbed
// (scrubbedMessage): the server's texts quote the values they meet. Some
// SQLSTATEs never do: their texts name catalog objects (tables, columns,
// functions, types, roles) or quote the client's own statement text, and
// the people who use masked and anonymize roles need them to work out what
// went wrong ("permission denied for table recordings"). Those errors pass
// with the fields that cannot quote a value: severity, code, message, hint
// and cursor position. DETAIL, CONTEXT, the internal query and the
// object-name fields are dropped.
//
// A code alone does not prove the text is the server's own: RAISE in a
// function or trigger can give any SQLSTATE any text, and functions that
// look names up at run time quote their argument ('kari'::regclass on a
// column gives 42P01 relation "kari" does not exist). So an error passes
// only when:
//
//   - it carries no CONTEXT (every PL/pgSQL and SQL function that is not
//     inlined adds one; the regtype parser adds "invalid type name ..."),
//     except the lock-wait lines "while updating tuple (0,1) in relation
//     "t"" for the codes that come from waiting on a row lock;
//   - it carries no internal query (SQL that a function ran);
//   - for the codes that also come from looking up a name held in a value
//     (needsPosition), it carries a cursor position in the statement text:
//     the parser sets one when the name is in the text the client sent, a
//     lookup at run time (casts to the reg* types, has_*_privilege,
//     current_setting, inlined SQL functions) never does.
//
// The masking analysis refuses such lookups on PII-derived values anyway
// (a cast or function that can fail on a value is an error oracle); these
// checks make the scrubbing hold without relying on it.

// plainRule is how the errors of one SQLSTATE may pass.
type plainRule struct {
	needsPosition bool // raised by run-time name lookups too: only the parser's (with a position) pass
	lockWait      bool // may carry the lock-wait CONTEXT lines
}

// plainCodes lists the SQLSTATEs whose server texts never quote a stored
// value, each with the texts PostgreSQL 15 gives it. A code not listed
// here is scrubbed: 23505 quotes the duplicate key, 23502 and 23514 the
// failing row, 22P02 and the other data exceptions the value they could not
// read, 44000 the row a view's check refused, P0001 is RAISE's own.
var plainCodes = map[string]plainRule{
	// insufficient_privilege: "permission denied for table recordings",
	// "permission denied for column x of relation t", "must be owner of
	// table t", "new row violates row-level security policy for table
	// "t"" (no row: RLS keeps it out on purpose, unlike 44000).
	"42501": {},
	// undefined_table: relation "x" does not exist, missing FROM-clause
	// entry for table "x". Also regclass input at run time.
	"42P01": {needsPosition: true},
	// undefined_column: column "x" does not exist, column t.x does not
	// exist; hint: Perhaps you meant to reference the column "t.y".
	// Also has_column_privilege(t, value, ...) at run time.
	"42703": {needsPosition: true},
	// undefined_function: function f(integer) does not exist, operator
	// does not exist: text = integer; the hint is fixed text. Also
	// regproc input at run time.
	"42883": {needsPosition: true},
	// undefined_object: type "x" does not exist, role "x" does not exist,
	// unrecognized configuration parameter "x". Also regtype, regrole,
	// current_setting(value) at run time.
	"42704": {needsPosition: true},
	// invalid_schema_name: schema "x" does not exist. Also the schema part
	// of a qualified name read at run time ('a.b'::regclass).
	"3F000": {needsPosition: true},
	// syntax_error: syntax error at or near "x" quotes the client's own
	// text. Also tsquery and jsonpath input (no position) and type names
	// read at run time (a position, but also a CONTEXT).
	"42601": {needsPosition: true},
	// lock_not_available: could not obtain lock on relation "t", could not
	// obtain lock on row in relation "t", canceling statement due to lock
	// timeout.
	"55P03": {lockWait: true},
	// query_canceled: canceling statement due to statement timeout, due to
	// user request.
	"57014": {lockWait: true},
	// in_failed_sql_transaction: current transaction is aborted, commands
	// ignored until end of transaction block.
	"25P02": {},
	// read_only_sql_transaction: cannot execute UPDATE in a read-only
	// transaction.
	"25006": {},
	// serialization_failure: could not serialize access due to concurrent
	// update (DETAIL: the reason code, dropped).
	"40001": {lockWait: true},
	// deadlock_detected: deadlock detected (DETAIL: the processes and
	// their locks, dropped; hint: See server log for query details.).
	"40P01": {lockWait: true},
	// duplicate_table: relation "t" already exists.
	"42P07": {},
}

// lockWaitContext is the CONTEXT a statement gets while it waits for a row
// lock (XactLockTableWaitErrorCb in lmgr.c): a tuple id and a relation name.
var lockWaitContext = regexp.MustCompile(`^while [a-z ]+ tuple \(\d+,\d+\) in relation ".*"$`)

// plainError returns the fields of e that may reach a role whose errors
// are scrubbed, and whether e may pass at all.
func plainError(e *pgproto3.ErrorResponse) (pgproto3.ErrorResponse, bool) {
	rule, listed := plainCodes[e.Code]
	if !listed || e.InternalQuery != "" || (rule.needsPosition && e.Position == 0) || !plainContext(rule, e.Where) {
		return pgproto3.ErrorResponse{}, false
	}
	return pgproto3.ErrorResponse{Severity: e.Severity, SeverityUnlocalized: e.SeverityUnlocalized,
		Code: e.Code, Message: e.Message, Hint: e.Hint, Position: e.Position}, true
}

func plainContext(rule plainRule, where string) bool {
	if where == "" {
		return true
	}
	if !rule.lockWait {
		return false
	}
	for _, line := range strings.Split(where, "\n") {
		if !lockWaitContext.MatchString(line) {
			return false
		}
	}
	return true
}

// PlainCodes lists the SQLSTATEs of plainCodes, for tests that provoke
// each of them.
func PlainCodes() []string {
	codes := make([]string, 0, len(plainCodes))
	for c := range plainCodes {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	return codes
}
