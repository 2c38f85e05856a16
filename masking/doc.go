// Package masking decides what a masked session may run and how its
// results are masked. For every query text a masked role sends, Analyze
// parses it with PostgreSQL's own parser (pg_query) and returns either a
// Plan, which says for each result column whether and how to mask it, or a
// *Rejection (SQLSTATE 42501) when the text could reveal personal data
// (PII) in any way other than through masked result columns. The proxy
// applies the Plan to RowDescription, DataRow and COPY data.
//
// # Lineage
//
// The analyser follows every value from the columns it reads to the result
// columns it reaches. The lineage of a value is the set of PII columns it
// derives from ("public.customers.email"), and whether it is one of them
// unchanged:
//
//   - Plain: the PII column itself, passed through aliases, FROM-clause
//     column renames, subqueries, WITH queries, views, joins and UNION
//     branches that are all the same kind of column (same mask strategy).
//     The proxy masks it with the column's own strategy (Output.Strategy).
//   - Derived: anything computed from PII (lower(email), email || '@',
//     casts, CASE, COALESCE, arrays, rows, JSON and XML constructors,
//     aggregates other than count, window functions, scalar and ARRAY
//     subqueries, UNION branches of different kinds, values of functions in
//     FROM). The proxy redacts it whole, in a form valid for its type.
//   - Exact: derived from no PII (Output.Sources empty); passed unchanged.
//     count(*), count(col) and count(DISTINCT col) of a plain column,
//     col IS [NOT] NULL of a plain column, EXISTS (...) and GROUPING() are
//     exact: they return no part of any value.
//
// A whole row (SELECT c FROM customers c, row_to_json(c), to_jsonb(c),
// c::text, hstore(c), (c).email, the row of a subquery) derives from every
// PII column of its relation. A view is analysed through its definition
// (Relation.ViewSQL), recursively up to Options.MaxViewDepth; partitions and
// inheritance children come from the Catalog with their parent's rules. A
// function in FROM yields columns that derive from all its arguments; when
// the analyser cannot count them, StatementPlan.AllColumns stands for every
// column of the result. RETURNING, DECLARE CURSOR (kept by the session for
// FETCH), PREPARE (kept for EXECUTE), COPY ... TO STDOUT (with its format)
// and EXPLAIN (whose plan text derives from everything the statement
// reads) are analysed the same way. Recursive WITH queries are analysed
// again until their lineage stops changing.
//
// A name the Catalog does not know does not exist: the server will raise
// the error, so the analyser returns a plan. Unqualified column names are
// resolved against every query level at once, and an ambiguous name takes
// the lineage of all its candidates, so the analyser never sees less than
// the server reads.
//
// # What is rejected, and why
//
// Masking a result column hides the value in that column only. Everything
// else a query does with a PII value can show it too, so for masked roles:
//
//   - Oracles. Any use of a PII-derived value that decides which rows come
//     back, in which order, or which branch is taken: WHERE, JOIN ... ON and
//     USING, HAVING, FILTER, ORDER BY (and in aggregates and windows),
//     DISTINCT ON, LIMIT and OFFSET, window frames, CASE conditions,
//     NULLIF, GREATEST and LEAST, INTERSECT and EXCEPT, XMLTABLE and
//     JSON_TABLE row patterns, and set-returning functions whose number of
//     rows follows the value. Two exceptions: IS [NOT] NULL of a column, and
//     for a column declared lookup, = / IN / = ANY against constants or
//     parameters (the row comes back masked); the constants may be cast to
//     built-in types only and carry no COLLATE, since a nondeterministic
//     collation (or a domain or citext) makes = match more than the value.
//     TABLESAMPLE arguments count as a LIMIT.
//   - Errors. A computation that fails for some values and not for others
//     tells them apart even when the error's text is withheld
//     (power(0, position('k' in email) - 1), ascii(email) * 20000000). A
//     PII-derived value may flow only through operations that cannot fail
//     whatever it holds (analyze_total.go): the pg_catalog functions of
//     totalFunctions in the argument positions listed there (lower,
//     length, md5, concat, left(x, n) with x PII, to_json, string_agg...),
//     text casts, ||, comparisons, JSON field access, patterns matched
//     against a constant pattern, and the constructors (ROW, CASE results,
//     COALESCE, XMLELEMENT, ARRAY[] unless it combines arrays whose shape
//     may follow a value, likewise array_agg and array ||). Anything else
//     on a PII-derived value is refused: arithmetic, casts to other types,
//     division, parsing (JSON, XML, dates, numbers), a pattern, format
//     string, JSON key or encoding built from a value, SQL/JSON queries.
//     So is what grows with the content of a value, which padding can push
//     past the 1 GB limit of a value when a guess is right: replace,
//     regexp_replace, translate, string_to_array, array_replace.
//   - Grouping. GROUP BY, DISTINCT, PARTITION BY and UNION compare values.
//     On a plain column they are allowed when the query orders its rows by
//     non-PII expressions (else the rows come back sorted by the hidden
//     values, or by their hash); on a computed value (lower(email), a UNION
//     of a column and a constant) they are refused, as is count(DISTINCT)
//     of one. Rows that tie on the ORDER BY keys would still come back in
//     the order of the values, so the server runs the text with random() as
//     a last key (rewrite.go); FETCH ... WITH TIES is refused there.
//   - Row order. An index on a PII column returns rows sorted by the hidden
//     values. col IS [NOT] NULL in WHERE and JOIN ... ON is run as a CASE no
//     index matches, and the settings that steer the planner to an index
//     (enable_*, the page and tuple costs, effective_cache_size) may not be
//     set: SET, set_config, ALTER ROLE ... SET, startup options.
//   - Writes. A PII-derived value may not be written anywhere: INSERT,
//     UPDATE ... SET, MERGE, ON CONFLICT DO UPDATE, CREATE TABLE AS, SELECT
//     INTO, COPY TO a file or program, nor passed as a parameter of EXECUTE
//     (the prepared statement was analysed with its parameters taken as
//     the client's constants); nor stored as a query: CREATE VIEW,
//     CREATE MATERIALIZED VIEW, CREATE FUNCTION, CREATE POLICY, index and
//     constraint expressions that read PII. A FOREIGN KEY to a PII column is
//     refused (each write would test whether a value exists).
//   - Side channels. Functions that keep, send or time what they are given
//     (set_config, pg_notify, advisory locks, nextval/setval, large
//     objects, pg_sleep...) may not receive a PII-derived value.
//   - Code that runs on its own. Functions that run SQL given as text or
//     read whole tables or files (query_to_xml and the other *_to_xml
//     functions, dblink, ts_stat, pg_read_file...), any function outside
//     pg_catalog that the rules do not allow (its body sees raw values),
//     DO, CALL of a procedure not allowed, triggers, rules, casts,
//     operators, aggregates, languages, extensions, foreign servers and
//     tables, publications and subscriptions, LOAD, ALTER SYSTEM. The
//     statistics catalogs (pg_stats, pg_statistic, pg_stats_ext,
//     pg_stats_ext_exprs) hold sampled values and are refused. Renaming,
//     moving or altering a relation that holds PII is refused: the rules
//     name it.
//   - Identity. SET ROLE, SET SESSION AUTHORIZATION (and LOCAL, RESET,
//     RESET ALL, ALTER ROLE/DATABASE ... SET of them) and set_config of
//     these or of a setting name that is not a constant: the session must
//     stay the role it logged in as. search_path is followed instead (see
//     below); the forms of changing it that the session cannot follow
//     exactly are refused. Functions named in pg_temp are refused (the
//     Catalog does not search it), and so is a function the Catalog does
//     not know called on a PII-derived value: it may exist by the time
//     the text runs.
//
// # search_path
//
// The analyser resolves unqualified names as the server does for the
// session (searchpath.go, session_path.go, pgcatalog.go): the setting split
// as SplitIdentifierString splits it (lowercased unless quoted, names
// truncated to 63 bytes), "$user" as the login role, pg_catalog first
// unless listed, schemas that do not exist or that the role may not use
// (USAGE) skipped. pg_temp is left out: a masked role cannot put PII into a
// temporary relation, so resolving past one masks more, never less (and
// functions are never looked up there). The path at login is read from the
// session itself, so startup options and ALTER ROLE/DATABASE ... SET count.
//
// A session's path changes only through statements the analyser follows:
// SET, SET LOCAL, RESET and SET ... TO DEFAULT of search_path, DISCARD
// ALL, and SELECT pg_catalog.set_config('search_path', '<constant>',
// <true|false>) as the one target of a SELECT with no other clause, alone
// in its text. Anywhere else set_config of search_path is refused: in a
// WHERE clause, a CASE branch, a FROM that runs it once per row, a CTE, a
// view or a function body it may run any number of times, or none, which
// the analyser cannot know. A function's SET search_path clause is refused
// (its body would resolve through a path the analyser did not see), and a
// text in which a path change is followed by a statement that resolves
// names is refused (that statement was analysed under the old path).
//
// The value is tracked with the transaction, as guc.c keeps it
// (pathTracker): a completed SET (CommandComplete) applies at once; at the
// transaction's end it is kept by a commit and dropped by a rollback; SET
// LOCAL lasts until the end; SAVEPOINT saves the values and ROLLBACK TO
// restores them; a failed statement in a block leaves it failed until
// ROLLBACK (a COMMIT of it rolls back), and outside a block rolls the
// implicit transaction back. The proxy reports every ReadyForQuery's
// status and whether an error came before it (Policy.Ready), which is how
// the session learns that an implicit transaction committed or failed. If
// the status ever contradicts what the tracker saw (a block ended that it
// did not see end, with the path changed in it), the session refuses every
// further query: it cannot know the path, so it does not guess.
//
// Two more things keep the analyser's path the server's at the moment each
// statement runs. A statement that may change the path (a SET of it, or
// the end of a transaction it was changed in) is a barrier: until its
// ReadyForQuery the proxy refuses every Query, Parse and Bind sent behind
// it, since they would be analysed before the change and run after it.
// And the server parses a prepared statement again when search_path has
// changed since it was prepared, so a Bind (Session.Bindable) or EXECUTE of
// a statement analysed under another path is refused; it may be prepared
// again. Cursors keep the plan they were declared with.
//
// View definitions are read with search_path empty (every name outside
// pg_catalog schema-qualified by pg_get_viewdef) and analysed through
// pg_catalog alone, so the session's path does not change what a view
// reads. The plan cache key holds the path (pathKey).
//
// Rejection.Reason names which of these rules a rejection enforces
// (oracle, error, grouping, write, side_channel, code, identity, catalog;
// unsupported for an unknown node type): the label of the rejected-queries
// metric (metrics.go), which also counts masked values per column, from a
// row count each RowMasker adds up at the end of its result (Flush).
//
// Writing to a relation that holds PII (INSERT, UPDATE, DELETE, MERGE,
// COPY FROM) and utility statements naming one count as reading its PII
// (ReadsPII), though no value is returned: the server's errors quote the
// rows they meet ("Failing row contains (...)" of a NOT NULL violation,
// the existing row of ON CONFLICT DO UPDATE, the duplicates of a unique
// index), so the proxy scrubs them.
//
// Inside a view definition only lineage is computed: the definition is its
// owner's choice, and masked roles cannot create views that read PII.
//
// The walker knows every node type of pg_query's parse tree
// (walk_gen.go, generated, and the classes in walk.go). A node type it does
// not handle, or one the raw parser never produces, is a rejection, never a
// silent pass. A text with several statements is rejected as a whole when
// any of them is; so is a text where a statement that changes the catalog
// is followed by another that resolves names. Rejection messages name the
// construct and the column, never a literal of the query.
//
// # Contract with the proxy
//
// A Plan depends on the shape of the text and the catalog, not on literal
// values, and holds none: the proxy caches it under CacheKey, which keeps
// the literals the analysis reads (ORDER BY positions, COPY options,
// set_config's setting, function bodies). Outputs line up with the columns
// of RowDescription. The proxy also checks each column's table OID and
// attribute number against StatementPlan.Origins and masks a column whose
// origin is PII even when its Output is exact, and redacts every column
// when the column count differs from the plan. A derived output must be
// masked to a constant of its type that does not depend on the value,
// including whether it is NULL (substring(email from '^k') is NULL exactly
// when the pattern does not match). ReadsPII tells the proxy to scrub the
// errors of a statement. FETCH, MOVE and EXECUTE report ReadsPII because
// their rows come from a cursor or statement the session keeps; the session
// must keep the Outputs (or AllColumns) of each DECLARE and PREPARE.
// ChangesCatalog tells it to drop cached catalog entries.
//
// # One value per database
//
// Everything the guard knows of a database lives in one Database value
// (database.go), looked up by the session's database, never process-wide:
// the proxy's own pool to it (admin_dsn or the libpq environment give the
// server, role and password; the database is always the session's), its
// catalog reader with the rules of that database (rules.Config.ForDatabase:
// its own tables under databases:, else the top-level ones), the errors
// rules.Check finds there, and whether its ANONYMIZE audit log is ready.
//
// A session holds its Database from Open (or UseDatabase, for a session
// that is not masked but may run ANONYMIZE) until Close, so a pool in use
// is never closed. Pools open on first use, hold at most poolConns
// connections, each closed after poolIdle unused; a database nobody holds
// is closed after databaseIdle, or sooner, least recently used first, when
// more than maxDatabases are open. The pool and audit state outlive a
// reload; the catalog reader and check results are per rules generation.
//
// The check runs when a database is first used under a generation (the
// first session after start or a reload waits for it; serve runs it at
// start and reload for the databases it knows of). Its errors are logged
// once per generation, and Refusal turns those of the table an ANONYMIZE
// names, or of any table its cascade reaches, into the refusal, in check's
// words. A check that cannot run refuses every ANONYMIZE there and is tried
// again by the next session. Masking never depends on the check: a
// relation whose rules do not fit its columns fails closed in applyRules.
//
// # Known limits
//
//   - Errors are a one-bit channel. Computations that can fail on a value
//     are refused (see Errors above), but resource limits remain: a value
//     padded to just under the 1 GB limit of a field fails or not with its
//     length (email || repeat('x', n)); escaping functions (to_json,
//     quote_literal) grow with the number of quotes and backslashes in it;
//     memory and statement_timeout; a plain PII column of an array type
//     can make ARRAY[] or array_agg fail. These tell a length or a count
//     of special characters, not the value. The proxy scrubs error texts,
//     not the fact that an error happened.
//   - Row order under the server's own settings. When the DBA sets
//     enable_seqscan = off (postgresql.conf, ALTER ROLE or ALTER DATABASE),
//     an unordered SELECT of a PII column can be an index-only scan of its
//     index, in the order of the values. Leave the planner settings of
//     masked roles at their defaults.
//   - Operators are resolved by the server. A user-defined operator over a
//     PII column runs its function on raw values; masked roles cannot
//     create operators, but existing ones are not checked.
//   - Allowed functions are trusted: their results are treated as derived
//     from their arguments only.  A function body resolves its unqualified
//     names through the caller's search_path: give allowed functions a
//     SET search_path clause, or schema-qualify their bodies.
//   - Lookup columns reveal whether a guessed value exists, by design, and
//     writes to PII tables by masked roles can probe unique constraints.
//   - The analysis is as fresh as the Catalog. The session drops its cached
//     entries and plans after its own DDL (ChangesCatalog); others' DDL is
//     seen within catalogTTL (2 s; the catalog caches check an entry's age
//     when it is read, so a reader made per rules generation starts no
//     goroutine; a plan, in the cache or as the session's most recent one,
//     is used for at most catalogTTL after its analysis and never after a
//     purge), and meanwhile two checks fail closed:
//     a result column whose origin is any protected column of the database
//     is masked (markProtected), and a result with a column from a relation
//     the analysis never resolved (a table since replaced by a view) is
//     redacted whole (staleResult). What neither catches: a value computed
//     in the query (no origin) over a relation replaced within those 2 s.
package masking
