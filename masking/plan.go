package masking

import (
	"fmt"
	"strings"

	"github.com/pgveil/pgveil/rules"
)

// SQLSTATE for every rejection: insufficient_privilege.
const RejectCode = "42501"

// Plan is the analysis of one query text for one masked session: either a
// rejection, or one StatementPlan per statement in the text, in order.
// A Plan holds no literal values and no PII; it may be cached and shared.
type Plan struct {
	Statements []StatementPlan
	// rewrites are the changes the server must run the text with
	// (rewrite.go); see Analysis.Text.
	rewrites []rewriteStep
}

// StatementPlan says what one statement returns and how to mask it.
type StatementPlan struct {
	// Tag is the statement kind in upper case, as in its command tag
	// ("SELECT", "INSERT", "DECLARE CURSOR", "FETCH", "COPY", "SET", ...).
	Tag string
	// Outputs are the result columns in order, for statements that return
	// rows (SELECT, VALUES, RETURNING, EXPLAIN, SHOW, FETCH of a known cursor,
	// EXECUTE of a known prepared statement, COPY ... TO STDOUT). Nil when the
	// statement returns no rows.
	Outputs []Output
	// ReadsPII is true when any PII column is read anywhere in the statement,
	// even when no output carries it (errors of such statements are scrubbed).
	ReadsPII bool
	// Cursor is set for DECLARE (the cursor it defines) and FETCH/MOVE (the
	// cursor it reads); Prepared likewise for SQL PREPARE and EXECUTE. The
	// session keeps the Outputs of each name, since a FETCH or EXECUTE alone
	// cannot know them.
	Cursor   string
	Prepared string
	// Copy is set for COPY ... TO STDOUT.
	Copy *CopyFormat
	// AllColumns, when set, stands for every column of the result and
	// Outputs is nil: the analyser could not count the result columns (a *
	// over a function in FROM whose columns it does not know, a (row).*).
	// Every column is then treated as this Output; it is derived (never
	// Plain) and masked when it has Sources.
	AllColumns *Output
	// Origins are the columns of the relations the statement reads whose
	// values are PII or derive from it, by table OID and attribute number as
	// RowDescription reports them. A result column whose reported origin is
	// listed must be masked even when its Output says it is exact: the proxy
	// fails closed when the plan and the server disagree.
	Origins []Origin
	// ChangesCatalog is true for statements that may change how names
	// resolve (CREATE, ALTER, DROP, SELECT INTO, DISCARD ALL...): the proxy
	// must drop the session's cached catalog entries once it completes.
	ChangesCatalog bool

	// path is what the statement does to search_path, and txn the
	// transaction control it is (searchpath.go): the session follows both
	// to resolve names as the server does.
	path pathKind
	txn  txnOp
}

// Origin is a relation column whose values are PII or derive from it.
type Origin struct {
	Table  uint32 // pg_class OID of the table or view
	Attnum int16
	// Sources are the PII columns its values derive from.
	Sources []string
}

// CopyFormat describes the data format of a COPY TO STDOUT.
type CopyFormat struct {
	CSV       bool
	Delimiter byte   // '\t' for text, ',' for CSV unless given
	Quote     byte   // CSV only, default '"'
	Escape    byte   // CSV only, default = Quote
	Null      string // "\\N" for text, "" for CSV unless given
	Header    bool
	// Binary is FORMAT binary: the analyser allows it only when no output
	// is masked, so the data passes through unparsed.
	Binary bool
}

// Output is one result column.
type Output struct {
	// Name is the column name the server will report (informational).
	Name string
	// Sources are the PII columns the value derives from ("schema.table.column").
	// Empty means the value is exact: it passes through unchanged.
	Sources []string
	// Plain is true when the value is the PII column itself, unchanged, so
	// the column's own mask strategy applies. Otherwise a PII-derived value
	// is redacted in a form valid for its result type.
	Plain bool
	// Strategy is the column's mask strategy when Plain.
	Strategy rules.Strategy
}

// Masked reports whether the output needs masking.
func (o Output) Masked() bool { return len(o.Sources) > 0 }

// Rejection is returned instead of a Plan when the statement cannot be
// proven safe. Its Error text is what the client sees in the ErrorResponse.
type Rejection struct {
	// Construct names what was refused ("ORDER BY", "function dblink", ...).
	Construct string
	// Column names the PII column involved, when one is ("customers.email").
	Column string
	// Message is the full message; built from the above when empty.
	Message string
	// Hint is optional advice ("add an ORDER BY on non-PII columns").
	Hint string
	// Kind is the rule the query breaks, one of the Reason constants;
	// when empty, Reason derives it from Construct and Hint.
	Kind string
}

// The reasons of a rejection (Rejection.Reason), a fixed set: they label
// the pgveil_rejected_queries_total metric. See doc.go, "What is rejected".
const (
	ReasonOracle      = "oracle"       // a PII value decides rows, order or branch
	ReasonError       = "error"        // a computation that can fail on some values
	ReasonGrouping    = "grouping"     // GROUP BY, DISTINCT, UNION... compare PII values
	ReasonWrite       = "write"        // a PII value written or stored as a query
	ReasonSideChannel = "side_channel" // a function that keeps, sends or times a PII value
	ReasonCode        = "code"         // code that runs on its own, or functions not allowed
	ReasonIdentity    = "identity"     // changing the role or name resolution
	ReasonCatalog     = "catalog"      // statistics, views it cannot read, renaming PII relations
	ReasonPrivilege   = "privilege"    // ANONYMIZE from a role not in roles.anonymize
	ReasonUnsupported = "unsupported"  // a node type the analyser does not handle
	ReasonOther       = "other"
)

// Reason returns the kind of rule the rejection enforces: Kind when set,
// else one derived from the construct and hint.
func (r *Rejection) Reason() string {
	if r.Kind != "" {
		return r.Kind
	}
	switch {
	case strings.Contains(r.Hint, "tells them apart") || strings.Contains(r.Hint, "tells values apart"):
		return ReasonError
	case r.Hint == orderHint:
		return ReasonGrouping
	case strings.Contains(r.Construct, "JOIN"):
		return ReasonOracle
	}
	for _, p := range constructReasons {
		if strings.HasPrefix(r.Construct, p.prefix) {
			return p.reason
		}
	}
	return ReasonOther
}

// constructReasons maps construct names to reasons, by prefix; the first
// match wins, so longer prefixes come before their shorter ones.
var constructReasons = [...]struct{ prefix, reason string }{
	{"DISTINCT ON", ReasonOracle}, {"MERGE ... ON", ReasonOracle}, {"MERGE ... WHEN", ReasonOracle},
	{"COPY ... WHERE", ReasonOracle}, {"CREATE TABLE AS EXECUTE", ReasonCode},
	{"WHERE", ReasonOracle}, {"HAVING", ReasonOracle}, {"FILTER", ReasonOracle}, {"ORDER BY", ReasonOracle},
	{"window", ReasonOracle}, {"a window", ReasonOracle}, {"LIMIT", ReasonOracle}, {"OFFSET", ReasonOracle},
	{"CASE", ReasonOracle}, {"NULLIF", ReasonOracle}, {"GREATEST", ReasonOracle}, {"LEAST", ReasonOracle},
	{"INTERSECT", ReasonOracle}, {"EXCEPT", ReasonOracle}, {"XMLTABLE", ReasonOracle},
	{"JSON_TABLE", ReasonOracle}, {"TABLESAMPLE", ReasonOracle}, {"CYCLE", ReasonOracle}, {"SEARCH", ReasonOracle},
	{"GROUP BY", ReasonGrouping}, {"DISTINCT", ReasonGrouping}, {"PARTITION BY", ReasonGrouping},
	{"UNION", ReasonGrouping}, {"count(DISTINCT)", ReasonGrouping},
	{"INSERT", ReasonWrite}, {"UPDATE", ReasonWrite}, {"MERGE", ReasonWrite}, {"SELECT INTO", ReasonWrite},
	{"CREATE TABLE AS", ReasonWrite}, {"CREATE VIEW", ReasonWrite}, {"CREATE MATERIALIZED VIEW", ReasonWrite},
	{"CREATE POLICY", ReasonWrite}, {"CREATE INDEX", ReasonWrite}, {"CREATE STATISTICS", ReasonWrite},
	{"FOREIGN KEY", ReasonWrite}, {"a FOREIGN KEY", ReasonWrite}, {"COPY TO", ReasonWrite}, {"EXECUTE", ReasonWrite},
	{"SET ", ReasonIdentity}, {"RESET", ReasonIdentity}, {"set_config", ReasonIdentity},
	{"a replication connection", ReasonIdentity},
	{"reading ", ReasonCatalog}, {"ALTER ... ", ReasonCatalog}, {"ALTER SCHEMA", ReasonCatalog},
	{"ALTER TABLE", ReasonCatalog}, {"a schema change", ReasonCatalog},
	{"DO", ReasonCode}, {"CALL", ReasonCode}, {"CREATE ", ReasonCode}, {"ALTER ", ReasonCode}, {"LOAD", ReasonCode},
	{"IMPORT FOREIGN SCHEMA", ReasonCode}, {"EXPLAIN EXECUTE", ReasonCode}, {"function ", ReasonCode},
}

// reasonList names every reason, for the metric's help text.
func reasonList() string {
	return strings.Join([]string{ReasonOracle, ReasonError, ReasonGrouping, ReasonWrite, ReasonSideChannel,
		ReasonCode, ReasonIdentity, ReasonCatalog, ReasonPrivilege, ReasonUnsupported, ReasonOther}, ", ")
}

// Error implements error.
func (r *Rejection) Error() string {
	if r.Message != "" {
		return r.Message
	}
	if r.Column != "" {
		return fmt.Sprintf("pgveil: column %s is PII; %s is not allowed for masked roles", r.Column, r.Construct)
	}
	return fmt.Sprintf("pgveil: %s is not allowed for masked roles", r.Construct)
}
