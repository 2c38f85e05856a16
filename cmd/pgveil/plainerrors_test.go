package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/proxy"
)

// The errors tests: a table of people with PII, a table of recordings that
// the test roles may not read, a trigger that RAISEs a listed SQLSTATE
// quoting a value, and an allowed function that looks a value up as a
// table name at run time.
const plainErrorsSchema = `
CREATE TABLE IF NOT EXISTS msgs_people (id int8 PRIMARY KEY, email text UNIQUE, name text, note text);
INSERT INTO msgs_people VALUES (1, 'kari.nordmann@example.com', 'Kari', 'a'), (2, 'ola.hansen@example.org', 'Ola', 'b')
  ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS msgs_recordings (id int8 PRIMARY KEY, person_id int8, audio text);
DO $$ BEGIN CREATE ROLE msgs_masked LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE msgs_dpo LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON msgs_people TO msgs_masked, msgs_dpo;
GRANT CREATE ON SCHEMA public TO msgs_masked, msgs_dpo;
CREATE OR REPLACE FUNCTION msgs_refuse() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'permission denied for %', NEW.email USING ERRCODE = 'insufficient_privilege'; END $$;
CREATE OR REPLACE TRIGGER msgs_refuse BEFORE UPDATE OF note ON msgs_people FOR EACH ROW EXECUTE FUNCTION msgs_refuse();
CREATE OR REPLACE FUNCTION msgs_reg(v text) RETURNS oid LANGUAGE sql STABLE AS $$ SELECT v::regclass::oid $$;
`

const plainErrorsRules = `
roles:
  unmasked: [postgres]
  anonymize: [msgs_dpo]
allow_functions: [public.msgs_reg]
tables:
  public.msgs_people:
    key: id
    columns:
      email: {mask: email, anonymize: random_email}
      name:  {mask: redact, anonymize: redact}
  public.msgs_recordings:
    key: id
    columns:
      audio: {mask: redact, anonymize: redact}
`

func plainErrorsFixture(t *testing.T) {
	if err := db.Exec(testCtx(t), plainErrorsSchema); err != nil {
		t.Fatal(err)
	}
	auditLogFor(t, "msgs_dpo")
}

// plainCase is one server error a masked or anonymize role provokes.
type plainCase struct {
	code   string
	setup  []string // run first on the role's connection (their errors are not checked)
	sql    string   // the statement that fails with code
	dpoSQL string   // what the anonymize role runs instead ("" for sql)
	// hold runs on a direct superuser connection while sql runs: the
	// lock, or the committed change, that makes sql fail.
	hold []string
	// deadlock: hold's last statement waits for the role's row lock
	// until sql closes the cycle.
	deadlock bool
	want     string // the message, unscrubbed
	cleanup  []string
}

func plainCases() []plainCase {
	const lockWait = "SET lock_timeout = '200ms'"
	held := []string{"BEGIN", "SELECT 1 FROM msgs_people WHERE id = 1 FOR UPDATE"}
	return []plainCase{
		{code: "42501", sql: "SELECT audio FROM msgs_recordings", dpoSQL: "ANONYMIZE msgs_recordings WHERE id = 1",
			want: "permission denied for table msgs_recordings"},
		{code: "42P01", sql: "SELECT p.email FROM msgs_people p JOIN msgs_nosuch n ON n.id = p.id",
			want: `relation "msgs_nosuch" does not exist`},
		{code: "42703", sql: "SELECT email, nosuch FROM msgs_people", want: `column "nosuch" does not exist`},
		{code: "42883", sql: "SELECT email, 1 + 'a'::text FROM msgs_people", want: "operator does not exist: integer + text"},
		{code: "42704", sql: "SELECT email, 'x'::msgs_nosuchtype FROM msgs_people", want: `type "msgs_nosuchtype" does not exist`},
		{code: "3F000", sql: "SELECT email, 'x'::msgs_nosuchschema.t FROM msgs_people", want: `schema "msgs_nosuchschema" does not exist`},
		// pgveil parses with PostgreSQL 17's parser and rejects what it
		// cannot parse itself; the server (15) knows no IS JSON.
		{code: "42601", sql: "SELECT email FROM msgs_people WHERE '1' IS JSON", want: `syntax error at or near "JSON"`},
		{code: "55P03", setup: []string{lockWait}, hold: held, sql: "UPDATE msgs_people SET name = 'x' WHERE id = 1",
			dpoSQL: "ANONYMIZE msgs_people WHERE id = 1", want: "canceling statement due to lock timeout", cleanup: []string{"RESET lock_timeout"}},
		{code: "55P03", hold: held, sql: "SELECT email FROM msgs_people WHERE id = 1 FOR UPDATE NOWAIT",
			dpoSQL: "ANONYMIZE msgs_people WHERE id = 1", setup: []string{"SET lock_timeout = '1ms'"},
			want: "lock", cleanup: []string{"RESET lock_timeout"}}, // NOWAIT: could not obtain lock on row in relation; ANONYMIZE: lock timeout
		{code: "57014", setup: []string{"SET statement_timeout = '200ms'"}, hold: held,
			sql: "UPDATE msgs_people SET name = 'x' WHERE id = 1", dpoSQL: "ANONYMIZE msgs_people WHERE id = 1",
			want: "canceling statement due to statement timeout", cleanup: []string{"RESET statement_timeout"}},
		{code: "25P02", setup: []string{"BEGIN", "SELECT 1/0"}, sql: "SELECT email FROM msgs_people",
			dpoSQL: "ANONYMIZE msgs_people WHERE id = 1", want: "current transaction is aborted", cleanup: []string{"ROLLBACK"}},
		{code: "25006", setup: []string{"BEGIN READ ONLY"}, sql: "UPDATE msgs_people SET name = 'x' WHERE id = 1",
			dpoSQL: "ANONYMIZE msgs_people WHERE id = 1", want: "in a read-only transaction",
			cleanup: []string{"ROLLBACK"}},
		{code: "40001", setup: []string{"BEGIN ISOLATION LEVEL REPEATABLE READ", "SELECT count(*) FROM msgs_people"},
			hold: []string{"UPDATE msgs_people SET name = name WHERE id = 2"}, sql: "UPDATE msgs_people SET name = 'x' WHERE id = 2",
			dpoSQL: "ANONYMIZE msgs_people WHERE id = 2", want: "could not serialize access due to concurrent update",
			cleanup: []string{"ROLLBACK"}},
		{code: "40P01", setup: []string{"BEGIN", "UPDATE msgs_people SET name = 'x' WHERE id = 1"}, deadlock: true,
			hold: []string{"SET deadlock_timeout = '20s'", "BEGIN", "UPDATE msgs_people SET name = name WHERE id = 2",
				"UPDATE msgs_people SET name = name WHERE id = 1"},
			sql: "UPDATE msgs_people SET name = 'x' WHERE id = 2", dpoSQL: "ANONYMIZE msgs_people WHERE id = 2",
			want: "deadlock detected", cleanup: []string{"ROLLBACK"}},
		{code: "42P07", sql: "CREATE TABLE msgs_people (a int)", want: `relation "msgs_people" already exists`},
	}
}

// TestPlainErrorsReachMaskedRoles provokes a real server error of every
// SQLSTATE in proxy's plainCodes, from a statement that reads PII (so its
// errors were scrubbed before), as a masked role and as an anonymize role
// (with ANONYMIZE where the error can come from one), in the simple and
// the extended protocol. Each arrives with its message, and without DETAIL,
// CONTEXT or anything that quotes a value.
func TestPlainErrorsReachMaskedRoles(t *testing.T) {
	plainErrorsFixture(t)
	p := startProxyRules(t, plainErrorsRules, "")
	seen := map[string]bool{}
	for _, role := range []string{"msgs_masked", "msgs_dpo"} {
		for _, extended := range []bool{false, true} {
			c := rawConnect(t, p.addr, role)
			for _, tc := range plainCases() {
				sql := tc.sql
				if role == "msgs_dpo" && tc.dpoSQL != "" {
					sql = tc.dpoSQL
				}
				e := provoke(t, c, tc, sql, extended)
				what := role + ": " + sql
				if extended {
					what += " (extended)"
				}
				switch {
				case e == nil:
					t.Errorf("%s: no error, want %s", what, tc.code)
				case e.Code != tc.code || strings.Contains(e.Message, "withheld") || !strings.Contains(e.Message, tc.want):
					t.Errorf("%s: got %s %q, want %s %q", what, e.Code, e.Message, tc.code, tc.want)
				case e.Detail != "" || e.Where != "" || e.InternalQuery != "" || e.TableName != "" || e.ConstraintName != "":
					t.Errorf("%s: %s keeps a field that may quote a value: %+v", what, e.Code, e)
				}
				seen[tc.code] = true
			}
			if leak := findLeak(c.Everything()); leak != "" {
				t.Errorf("%s: LEAK: %s", role, leak)
			}
		}
	}
	for _, code := range proxy.PlainCodes() {
		if !seen[code] {
			t.Errorf("SQLSTATE %s is passed unscrubbed but has no case here", code)
		}
	}
}

// provoke runs a case on c and returns the error sql got.
func provoke(t *testing.T, c *rawConn, tc plainCase, sql string, extended bool) *pgproto3.ErrorResponse {
	t.Helper()
	for _, s := range tc.setup {
		if _, err := c.Simple(s); err != nil {
			t.Fatal(err)
		}
	}
	release := hold(t, tc)
	var r *rawResult
	var err error
	if extended {
		r, err = c.Extended(sql)
	} else {
		r, err = c.Simple(sql)
	}
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	for _, s := range tc.cleanup { // before release: a deadlocked hold waits for it
		if _, err := c.Simple(s); err != nil {
			t.Fatal(err)
		}
	}
	release()
	return r.Err()
}

// hold runs a case's hold statements on a direct superuser connection and
// returns what ends them: a ROLLBACK of the transaction they opened. For a
// deadlock, the last statement runs on its own until it waits for the
// role's lock.
func hold(t *testing.T, tc plainCase) func() {
	if len(tc.hold) == 0 {
		return func() {}
	}
	ctx := testCtx(t)
	other, err := pgx.Connect(ctx, db.DSN("postgres", "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	stmts, done := tc.hold, make(chan struct{})
	if tc.deadlock {
		stmts = stmts[:len(stmts)-1]
	}
	for _, s := range stmts {
		if _, err := other.Exec(ctx, s); err != nil {
			t.Fatalf("hold %s: %v", s, err)
		}
	}
	if tc.deadlock {
		go func() { defer close(done); other.Exec(ctx, tc.hold[len(tc.hold)-1]) }()
		waitForLockWait(t, ctx, other)
	} else {
		close(done)
	}
	return func() {
		<-done
		other.Exec(ctx, "ROLLBACK")
		other.Close(context.Background())
	}
}

// waitForLockWait polls until the session of other waits for a lock.
func waitForLockWait(t *testing.T, ctx context.Context, other *pgx.Conn) {
	pid := other.PgConn().PID()
	probe, err := pgx.Connect(ctx, db.DSN("postgres", "", "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close(context.Background())
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var waiting bool
		if err := probe.QueryRow(ctx, "SELECT coalesce(wait_event_type = 'Lock', false) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
	}
	t.Fatal("the holding session never waited for the lock")
}

// TestQuotingErrorsStayScrubbed: errors whose text quotes a value stay
// withheld for masked and anonymize roles: a listed SQLSTATE too, when a
// trigger RAISEs it with a value (it has a CONTEXT) or a name is looked up
// from a value at run time (no cursor position).
func TestQuotingErrorsStayScrubbed(t *testing.T) {
	plainErrorsFixture(t)
	p := startProxyRules(t, plainErrorsRules, "")
	cases := []struct{ code, sql string }{
		{"23505", "INSERT INTO msgs_people (id, email) VALUES (99, 'kari.nordmann@example.com')"}, // Key (email)=(...) already exists
		{"22P02", "INSERT INTO msgs_people (id, name) VALUES ('Kari', 'x')"},                      // invalid input syntax for type bigint: "Kari"
		{"23502", "UPDATE msgs_people SET id = NULL WHERE id = 1"},                                // Failing row contains (...)
		{"42501", "UPDATE msgs_people SET note = 'c' WHERE id = 1"},                               // the trigger: permission denied for kari...
		{"42P01", "SELECT msgs_reg(name) FROM msgs_people WHERE id = 1"},                          // relation "kari" does not exist
	}
	for _, role := range []string{"msgs_masked", "msgs_dpo"} {
		for _, extended := range []bool{false, true} {
			c := rawConnect(t, p.addr, role)
			for _, tc := range cases {
				e := provoke(t, c, plainCase{}, tc.sql, extended)
				switch {
				case e == nil:
					t.Errorf("%s: %s: no error, want %s", role, tc.sql, tc.code)
				case e.Code != tc.code || !strings.Contains(e.Message, "withheld") || e.Detail != "" || e.Hint != "" || e.Where != "" || e.Position != 0:
					t.Errorf("%s: %s (extended %v): got %+v, want %s withheld", role, tc.sql, extended, e, tc.code)
				}
			}
			everything := strings.ToLower(string(c.Everything()))
			for _, v := range []string{"kari", "ola.hansen"} {
				if strings.Contains(everything, v) {
					t.Errorf("%s: %q reached the client", role, v)
				}
			}
		}
	}
}
