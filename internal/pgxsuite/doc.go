// Package pgxsuite runs pgx's own test suite twice against a throwaway
// PostgreSQL cluster: once directly, once through a pgveil process in
// front of it, logged in as roles the rules leave unmasked. Every test
// that passes directly must pass through the proxy; the test fails
// otherwise and prints both counts per package.
//
// It holds no code but its test. The suite is the one of the pgx module
// pgveil builds with (go.mod), run where the go command keeps it in the
// module cache, with its own go.mod and go.sum: its test dependencies
// (testify and others) are downloaded by the go command on first use, and
// stay out of pgveil's go.mod. pgveil itself is built with go build and
// run as a process, with rules that mask a table, so that the session
// goes through the masking guard as a real unmasked session does.
//
// The cluster is set up as pgx's CONTRIBUTING asks: a database pgx_test
// with the hstore and ltree extensions and the uint64 domain, and the
// roles of its testsetup/postgresql_setup.sql. pg_hba gives each
// password role the method its name says (pgx_md5: md5, pgx_pw:
// password, pgx_scram: scram-sha-256), so that the proxy relays each
// authentication exchange. The connection strings pgx reads
// (PGX_TEST_DATABASE and the TCP, MD5, plain-password and SCRAM ones) are
// the same in both runs but for host and port. Tests that need what
// neither run offers (TLS, Unix sockets, PgBouncer, CockroachDB) skip in
// both.
//
// Which pgx packages run: PGVEIL_PGX_PACKAGES, a space-separated list of
// package patterns relative to the pgx module. The default, the root
// package, pgconn, pgxpool and stdlib, takes about 3 minutes on a 2-core
// machine (both runs), which fits make test; make pgx-suite runs ./...,
// about 8 minutes. PGVEIL_PGX_RUN is passed to go test -run, to look at a
// few tests.
package pgxsuite
