// Package anonymize implements pgveil's ANONYMIZE command, which overwrites
// a person's personal data for good and keeps their record:
//
//	ANONYMIZE customers WHERE email = 'kari@example.com';   -- tag: ANONYMIZE 1
//	ANONYMIZE customers WHERE id = ANY($1);
//	EXPLAIN ANONYMIZE customers WHERE id IN (8, 9);         -- preview, changes nothing
//
// The table must be declared in the rules with a key, and the WHERE clause
// is required (WHERE true for every row). For each matching row, every
// column with an anonymize strategy is overwritten and the anonymized
// marker, when declared, is set to now(); the key and every other column
// stay, so the person still counts in aggregates. Rows whose marker is
// already set are left alone, so running a statement twice is harmless.
// A table without a marker leaves alone the rows whose anonymize columns
// all hold what the strategies write already (NULL, the fixed text, an
// address 'anon-%@anonymized.invalid', an id of random_id in a text
// column; a uuid column cannot tell, so declare a marker there), so a
// second run counts 0 there
// too; its children still cascade from every row it matched, so a child
// row added since the first run is reached.
// The change cascades to every table declared with a parent link to a
// changed table (child.via = parent.key), recursively, with the child's
// own strategies and marker; a child declared with on_anonymize: delete
// has those rows deleted instead. Rows of a table whose marker was already
// set do not cascade again.
//
// A key may be composite (key: [id, started_at], for a table partitioned
// by time whose primary key includes the partition column); a child's
// parent.via then names as many columns, in the same order. The CTEs
// carry a composite key as columns k1, k2, ..., a child matches it with
// (via1, via2) IN (SELECT k1, k2 ...), and the audit log and EXPLAIN
// ANONYMIZE write it as a JSON array, [2, "2024-01-15T10:00:00+00:00"];
// a one-column key stays a plain value.
//
// The strategies never derive the new value from the old one: redact
// ('***'), blank (”), text:<fixed> and random_email ('anon-' || a random
// UUID || '@anonymized.invalid', a fresh address under a reserved domain
// for each row) and random_id ('anon-' || a random UUID, for a unique
// NOT NULL column such as a customer number; a fresh UUID in a uuid
// column) write text into text, varchar, char and name columns, the
// same text as a JSON string into json and jsonb columns, and NULL into
// columns of every other type; nullify writes NULL. Derived strategies
// (partial, email, pseudonym, generalize) are refused.
//
// # One statement
//
// Plan turns a statement into one SQL statement, a WITH of data-modifying
// CTEs: one per table of the cascade (the named table's UPDATE applies the
// WHERE clause and returns the keys it changed; each child's UPDATE or
// DELETE takes the rows whose via column is one of its parent's changed
// keys, = ANY (ARRAY(SELECT ...)), and returns its own keys), then the
// INSERT of the audit record. Each UPDATE locks its rows and re-checks its
// condition against rows changed concurrently, as UPDATE does, so two
// sessions anonymizing the same person cannot both count them. Being one
// statement, it commits or rolls back with the client's transaction, and
// outside one it is its own transaction. EXPLAIN ANONYMIZE runs the same
// row selections as plain SELECTs and returns one row per row that would
// change: (table, key, action, columns).
//
// The constants of the WHERE clause are moved into bind parameters
// numbered after the client's own, so the SQL text the server sees, and
// may log, quotes no value of the statement. (The server still logs bind
// parameter values with log_statement when log_parameter_max_length is
// not 0.)
//
// # The audit log
//
// Every ANONYMIZE appends one row to pgveil.anonymize_log in the same
// statement: when, the login role (session_user), the named table, the
// keys anonymized and the keys deleted per table as jsonb objects such as
// {"public.customers": [1, 2], "public.survey_responses": [10, 11]}, and
// the statement's text with parameters in place of its constants. It
// holds no personal data: a key must not be a PII column. EnsureAuditLog
// creates it:
//
//	CREATE SCHEMA IF NOT EXISTS pgveil;
//	CREATE TABLE IF NOT EXISTS pgveil.anonymize_log (
//	    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
//	    logged_at   timestamptz NOT NULL DEFAULT now(),
//	    login_role  text NOT NULL DEFAULT session_user,
//	    table_name  text NOT NULL,
//	    anonymized  jsonb NOT NULL DEFAULT '{}',
//	    deleted     jsonb NOT NULL DEFAULT '{}',
//	    statement   text NOT NULL
//	);
//	REVOKE ALL ON pgveil.anonymize_log FROM PUBLIC;
//	-- for each role of roles.anonymize:
//	GRANT USAGE ON SCHEMA pgveil TO dpo;
//	GRANT INSERT ON pgveil.anonymize_log TO dpo;
package anonymize
