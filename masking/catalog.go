package masking

import "github.com/pgveil/pgveil/rules"

// Catalog resolves names the way the server would for one session. The
// analyser calls it for every relation and function a statement names.
// Implementations read the live catalog (and cache); tests use a fixed one.
type Catalog interface {
	// Relation resolves a relation name. Schema is "" for an unqualified
	// name, which is resolved through the session's search_path (pg_temp
	// first, then pg_catalog, then the path). It returns (nil, nil) when no
	// such relation exists.
	Relation(schema, name string) (*Relation, error)
	// Function resolves a function name to what the analyser needs to know
	// about it. It returns (nil, nil) when no such function exists.
	Function(schema, name string) (*Function, error)
}

// Relation is a table, view, materialized view, partition, foreign table or
// sequence, with its columns in attribute order (dropped columns left out).
type Relation struct {
	OID    uint32
	Schema string
	Name   string
	// Kind is pg_class.relkind: 'r' table, 'p' partitioned table, 'v' view,
	// 'm' materialized view, 'f' foreign table, 'S' sequence, 'c' composite.
	Kind    byte
	Columns []Column
	// ViewSQL is the view's definition (pg_get_viewdef) for views and
	// materialized views, analysed like a subquery.
	ViewSQL string
}

// Column is one attribute of a relation.
type Column struct {
	Name    string
	Attnum  int16
	TypeOID uint32
	// PII is the rule for the column, nil when the column is not PII. A
	// partition or inheritance child carries its protected parent's rules.
	PII *rules.Column
	// Source names the protected column ("public.customers.email") when PII.
	Source string
}

// Function is what the analyser knows of a function.
type Function struct {
	Schema string
	Name   string
	// Language is "internal", "c", "sql", "plpgsql", ...
	Language string
	// Volatile is pg_proc.provolatile ('i', 's' or 'v').
	Volatile byte
	// Allowed is true when the rules allowlist the function by name.
	Allowed bool
	// System is true when the function, and every other candidate of its
	// name on the path, was created by initdb (information_schema's
	// helpers such as _pg_expandarray, which JDBC drivers call).
	System bool
}
