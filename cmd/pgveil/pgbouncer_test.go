package main

import (
	"context"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/bouncer"
)

// The PgBouncer tests run a real PgBouncer (Debian's pgbouncer package) in
// both layouts and both pool modes, and check the same things in each:
// masked and unmasked reads in the simple and extended protocols, a server
// connection that changes between transactions, cancels, and ANONYMIZE.

// bouncerUsers are PgBouncer's auth file: the test schema's roles, and the
// clients of the pools of a PgBouncer in front of pgveil.
var bouncerUsers = []string{"postgres", "support", "app_admin", "dpo", "alice", "bob", "carol"}

// startBouncer runs PgBouncer in mode with these databases until the test
// ends; it trusts its clients, as the test cluster does.
func startBouncer(t *testing.T, mode string, dbs ...bouncer.Database) *bouncer.Bouncer {
	t.Helper()
	c := bouncer.Config{Listen: freeAddr(t), PoolMode: mode, Databases: dbs}
	for _, u := range bouncerUsers {
		c.Users = append(c.Users, bouncer.User{Name: u})
	}
	b, err := bouncer.Start(c, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("pgbouncer.ini:\n%s--- pgbouncer.log (tail) ---\n%s", b.Ini, b.Log())
		}
		if err := b.Stop(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// layout is one way of putting PgBouncer and pgveil in a client's path.
type layout struct {
	mode string // PgBouncer's pool mode
	// connect opens a connection that reaches PostgreSQL as role, whose
	// queries run in the given exec mode unless a call says otherwise.
	connect func(t *testing.T, role string, exec pgx.QueryExecMode) *pgx.Conn
}

// execModes are the exec modes that work in the layout's pool mode. In
// transaction mode a server connection serves one transaction, so a
// statement prepared by name (pgx's default, QueryExecModeCacheStatement)
// may be gone, or already there, on the next: PgBouncer 1.18 does not
// track prepared statements. The simple protocol and unnamed statements
// (QueryExecModeExec: Parse, Bind, Execute and Sync at once) work.
func (l layout) execModes() []pgx.QueryExecMode {
	if l.mode == bouncer.Transaction {
		return []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec}
	}
	return modes
}

// defaultMode is the exec mode of a layout's connections.
func (l layout) defaultMode() pgx.QueryExecMode { return l.execModes()[len(l.execModes())-1] }

// openConn connects to addr as user to database with exec as the default
// exec mode, until the test ends.
func openConn(t *testing.T, addr, user, database string, exec pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	u := url.URL{Scheme: "postgres", Host: addr, Path: "/" + database, User: url.User(user), RawQuery: "sslmode=disable"}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = exec
	c, err := pgx.ConnectConfig(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("connect as %s to %s on %s: %v", user, database, addr, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestPgveilInFrontOfPgBouncer: clients -> pgveil -> PgBouncer ->
// PostgreSQL. pgveil's upstream is PgBouncer, with upstream_pool_mode set
// to match; its catalog reads (admin_dsn) go straight to PostgreSQL, or
// through the same PgBouncer (in transaction mode with pgx's exec mode,
// since pgveil's catalog queries are otherwise named statements).
func TestPgveilInFrontOfPgBouncer(t *testing.T) {
	for _, mode := range []string{bouncer.Session, bouncer.Transaction} {
		for _, admin := range []string{"direct", "pgbouncer"} {
			t.Run(mode+"/admin "+admin, func(t *testing.T) {
				b := startBouncer(t, mode, bouncer.Database{Name: "*", Addr: db.Addr()})
				adminDSN := db.DSN("postgres", "", "postgres")
				if admin == "pgbouncer" {
					adminDSN = "postgres://postgres@" + b.Addr + "/postgres?sslmode=disable"
					if mode == bouncer.Transaction {
						adminDSN += "&default_query_exec_mode=exec"
					}
				}
				p := startProxyAt(t, b.Addr, adminDSN, rulesYAML, "upstream_pool_mode: "+mode+"\n")
				checkLayout(t, layout{mode: mode, connect: func(t *testing.T, role string, exec pgx.QueryExecMode) *pgx.Conn {
					return openConn(t, p.addr, role, "postgres", exec)
				}})
			})
		}
	}
}

// bouncerPools are the databases of a PgBouncer in front of pgveil: one
// pool per role, since the role PgBouncer logs into pgveil as (user=)
// decides masking. Clients log in to PgBouncer as the pool's client.
var bouncerPools = map[string]struct{ database, client string }{
	"support":   {"masked", "alice"},
	"app_admin": {"raw", "bob"},
	"dpo":       {"anon", "carol"},
}

// TestPgBouncerInFrontOfPgveil: clients -> PgBouncer -> pgveil ->
// PostgreSQL, one PgBouncer database (pool) per role; and every other
// database name without a forced role, where PgBouncer logs into pgveil
// as the client's own.
func TestPgBouncerInFrontOfPgveil(t *testing.T) {
	for _, mode := range []string{bouncer.Session, bouncer.Transaction} {
		t.Run(mode, func(t *testing.T) {
			p := startProxyRules(t, rulesYAML, "")
			dbs := []bouncer.Database{{Name: "*", Addr: p.addr}}
			for role, pool := range bouncerPools {
				dbs = append(dbs, bouncer.Database{Name: pool.database, Addr: p.addr, DBName: "postgres", User: role})
			}
			b := startBouncer(t, mode, dbs...)
			l := layout{mode: mode, connect: func(t *testing.T, role string, exec pgx.QueryExecMode) *pgx.Conn {
				pool := bouncerPools[role]
				return openConn(t, b.Addr, pool.client, pool.database, exec)
			}}
			checkLayout(t, l)
			checkReused(t, l)
			t.Run("own role", func(t *testing.T) {
				own := layout{mode: mode, connect: func(t *testing.T, role string, exec pgx.QueryExecMode) *pgx.Conn {
					return openConn(t, b.Addr, role, "postgres", exec)
				}}
				checkReads(t, own, "support", []string{"1", "***@example.com", "***", "+4*******67"})
				checkReads(t, own, "app_admin", []string{"1", "kari.nordmann@example.com", "Kari", "+4791234567"})
			})
		})
	}
}

// checkLayout runs the checks every layout must pass.
func checkLayout(t *testing.T, l layout) {
	t.Run("masked", func(t *testing.T) {
		checkReads(t, l, "support", []string{"1", "***@example.com", "***", "+4*******67"})
	})
	t.Run("unmasked", func(t *testing.T) {
		checkReads(t, l, "app_admin", []string{"1", "kari.nordmann@example.com", "Kari", "+4791234567"})
	})
	t.Run("server changes", func(t *testing.T) { checkServerChanges(t, l) })
	t.Run("cancel", func(t *testing.T) {
		ctx, admin := db.Connect(t, "postgres")
		for _, role := range []string{"support", "app_admin"} {
			c := l.connect(t, role, l.defaultMode())
			sleepUntilCancelled(t, admin, c, l.mode+" "+role, func() error { return c.PgConn().CancelRequest(ctx) })
			if got := query(t, c, l.defaultMode(), "SELECT 1"); got[0][0] != "1" {
				t.Fatalf("after the cancel: %q", got)
			}
		}
	})
	t.Run("anonymize", func(t *testing.T) { checkAnonymize(t, l) })
}

// checkReads reads customer 1 as role in every exec mode of the layout
// and wants the row want (nil: only check that nothing fails), the
// role as current_user, and, when the role is masked, no PII.
func checkReads(t *testing.T, l layout, role string, want []string) {
	t.Helper()
	for _, exec := range l.execModes() {
		c := l.connect(t, role, exec)
		for range 3 { // a named statement is prepared once, then reused
			got := query(t, c, exec, "SELECT id, email, first_name, phone FROM customers WHERE id = $1", 1)
			if len(got) != 1 || (want != nil && !reflect.DeepEqual(got[0], want)) {
				t.Fatalf("%s, %v: got %q, want %q", role, exec, got, want)
			}
			if role == "support" {
				noPII(t, "masked result", fmt.Sprint(got))
			}
		}
		if got := query(t, c, exec, "SELECT current_user"); got[0][0] != role {
			t.Fatalf("%v: current_user %q, want %s", exec, got[0][0], role)
		}
	}
}

// checkServerChanges makes a masked client's server connection change
// between two of its statements and checks that it still masks. Client 2
// opens a transaction while client 1 is idle: in transaction mode it
// takes the server connection client 1 used last (PgBouncer hands out
// the most recently used one), so client 1's next statement runs on
// another. In session mode each keeps its own.
func checkServerChanges(t *testing.T, l layout) {
	ctx := testCtx(t)
	c1, c2 := l.connect(t, "support", l.defaultMode()), l.connect(t, "support", l.defaultMode())
	pid := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) (n int) {
		if err := q.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	p1 := pid(c1)
	tx, err := c2.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	p2 := pid(tx)
	p3 := pid(c1)
	if l.mode == bouncer.Transaction && (p2 != p1 || p3 == p1) {
		t.Fatalf("transaction mode: client 1 on backend %d then %d, client 2 on %d: want client 2 on client 1's first", p1, p3, p2)
	}
	if l.mode == bouncer.Session && (p2 == p1 || p3 != p1) {
		t.Fatalf("session mode: client 1 on backend %d then %d, client 2 on %d: want each on its own", p1, p3, p2)
	}
	got := query(t, c1, l.defaultMode(), "SELECT email, phone FROM customers WHERE id = $1", 2)
	if !reflect.DeepEqual(got, [][]string{{"***@example.org", "+4*******32"}}) {
		t.Fatalf("after the server changed: %q", got)
	}
}

// checkAnonymize runs ANONYMIZE as the anonymize role (dpo), in the
// simple protocol and in the extended one with a parameter, and checks
// the rows and the audit log straight on PostgreSQL.
func checkAnonymize(t *testing.T, l layout) {
	anonymizeFixture(t)
	ctx, admin := db.Connect(t, "postgres")
	c := l.connect(t, "dpo", l.defaultMode())
	var last int64
	if err := admin.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM pgveil.anonymize_log").Scan(&last); err != nil {
		t.Fatal(err)
	}
	if tag, err := c.Exec(ctx, "ANONYMIZE customers WHERE email = 'siri.dahl@example.com'", pgx.QueryExecModeSimpleProtocol); err != nil || tag.String() != "ANONYMIZE 1" {
		t.Fatalf("simple ANONYMIZE: %q %v", tag, err)
	}
	if tag, err := c.Exec(ctx, "ANONYMIZE customers WHERE id = $1", pgx.QueryExecModeExec, 51); err != nil || tag.String() != "ANONYMIZE 1" {
		t.Fatalf("extended ANONYMIZE: %q %v", tag, err)
	}
	var emails []string
	rows, _ := admin.Query(ctx, "SELECT email FROM customers WHERE id IN (50, 51) ORDER BY id")
	emails, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(emails) != 2 {
		t.Fatalf("anonymized rows: %q %v", emails, err)
	}
	for _, e := range emails {
		if !strings.HasSuffix(e, "@anonymized.invalid") {
			t.Fatalf("after ANONYMIZE: emails %q", emails)
		}
	}
	var logged int
	err = admin.QueryRow(ctx, "SELECT count(*) FROM pgveil.anonymize_log WHERE id > $1 AND login_role = 'dpo'", last).Scan(&logged)
	if err != nil || logged != 2 {
		rows, _ := admin.Query(ctx, "SELECT login_role || ' ' || table_name || ' ' || anonymized::text || ' ' || statement FROM pgveil.anonymize_log")
		all, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		t.Fatalf("audit log rows: %d %v; log: %q", logged, err, all)
	}
}

// checkReused: a PgBouncer in front of pgveil reuses a pgveil session
// for the next client of its pool (after DISCARD ALL in session mode,
// with nothing in transaction mode). The next client must still be masked
// and its statements must work.
func checkReused(t *testing.T, l layout) {
	t.Run("reused", func(t *testing.T) {
		ctx := testCtx(t)
		first := 0
		deadline := time.Now().Add(10 * time.Second)
		for n := 0; ; n++ {
			c := l.connect(t, "support", l.defaultMode())
			var pid int
			if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				t.Fatal(err)
			}
			one := layout{mode: l.mode, connect: func(*testing.T, string, pgx.QueryExecMode) *pgx.Conn { return c }}
			checkReads(t, one, "support", []string{"1", "***@example.com", "***", "+4*******67"})
			c.Close(ctx)
			if n == 0 {
				first = pid
			} else if pid == first {
				return
			}
			// In session mode PgBouncer resets the server connection
			// after the client leaves; until then the next client gets
			// another.
			if time.Now().After(deadline) {
				t.Fatalf("no client after the first got its pgveil session (backend %d) back", first)
			}
		}
	})
}

// TestTransactionPoolingForgetsStatements: behind PgBouncer in transaction
// mode, an idle masked session's next transaction may run on a server
// connection where another session prepared the same name as another
// statement. Client A prepares p (and s1, in the protocol) as a query on
// a column that is not masked while client B, on another server
// connection, prepares them as a query on email; client C then holds A's
// server, so that A's EXECUTE runs B's statement. Masked by A's
// definition it would return the raw email; with upstream_pool_mode:
// transaction pgveil forgets A's statements once A is idle, and the
// values are withheld (redacted for EXECUTE, NULL in the protocol). Inside one transaction the names work as usual.
func TestTransactionPoolingForgetsStatements(t *testing.T) {
	b := startBouncer(t, bouncer.Transaction, bouncer.Database{Name: "*", Addr: db.Addr()})
	p := startProxyAt(t, b.Addr, db.DSN("postgres", "", "postgres"), rulesYAML, "upstream_pool_mode: transaction\n")
	ctx := testCtx(t)
	simple := pgx.QueryExecModeSimpleProtocol
	a, bc, c := openConn(t, p.addr, "support", "postgres", simple), openConn(t, p.addr, "support", "postgres", simple),
		openConn(t, p.addr, "support", "postgres", simple)
	// steer prepares B's name while A holds a server connection, then
	// A's, and runs A's execute while C holds A's server connection.
	steer := func(prepareB, prepareA func() error, execA func() [][]string) [][]string {
		txA, err := a.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		query(t, a, simple, "SELECT 1")
		if err := prepareB(); err != nil {
			t.Fatal(err)
		}
		if err := prepareA(); err != nil {
			t.Fatal(err)
		}
		if err := txA.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		txC, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer txC.Rollback(ctx)
		query(t, c, simple, "SELECT 1")
		return execA()
	}
	exec := func(c *pgx.Conn, sql string) func() error {
		return func() error { _, err := c.Exec(ctx, sql); return err }
	}
	got := steer(exec(bc, "PREPARE p AS SELECT lower(email) FROM customers WHERE id = 1"),
		exec(a, "PREPARE p AS SELECT lower(country) FROM customers WHERE id = 1"),
		func() [][]string { return query(t, a, simple, "EXECUTE p") })
	if fmt.Sprint(got) != "[[***]]" { // an EXECUTE of a name the session does not know is redacted
		t.Fatalf("EXECUTE of a name prepared in an earlier transaction: got %q, want it redacted", got)
	}
	protocol := func(c *pgx.Conn, sql string) func() error {
		return func() error { _, err := c.PgConn().Prepare(ctx, "s1", sql, nil); return err }
	}
	got = steer(protocol(bc, "SELECT lower(email) FROM customers WHERE id = 2"),
		protocol(a, "SELECT lower(country) FROM customers WHERE id = 2"),
		func() [][]string {
			r := a.PgConn().ExecPrepared(ctx, "s1", nil, nil, nil).Read()
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			return [][]string{{fmt.Sprint(r.Rows)}}
		})
	if got[0][0] != "[[[]]]" {
		t.Fatalf("protocol statement prepared in an earlier transaction: got %q, want the value withheld", got)
	}
	// Within one transaction a named statement is the session's own.
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := a.PgConn().Prepare(ctx, "s2", "SELECT email FROM customers WHERE id = 3", nil); err != nil {
		t.Fatal(err)
	}
	r := a.PgConn().ExecPrepared(ctx, "s2", nil, nil, nil).Read()
	if r.Err != nil || len(r.Rows) != 1 || string(r.Rows[0][0]) != "***@example.net" {
		t.Fatalf("named statement within its transaction: %v %q", r.Err, r.Rows)
	}
	// A named ANONYMIZE (pgveil runs a statement of its own under the
	// name, whose answer it reads as a count) is not taken past a Sync:
	// the Bind is rejected, and nothing changes.
	anonymizeFixture(t)
	dpo := openConn(t, p.addr, "dpo", "postgres", simple)
	if _, err := dpo.PgConn().Prepare(ctx, "a1", "ANONYMIZE customers WHERE id = $1", nil); err != nil {
		t.Fatal(err)
	}
	r = dpo.PgConn().ExecPrepared(ctx, "a1", [][]byte{[]byte("50")}, nil, nil).Read()
	if r.Err == nil || !strings.Contains(r.Err.Error(), "must be executed before the next Sync") {
		t.Fatalf("named ANONYMIZE after a Sync: %s %v, want it rejected", r.CommandTag, r.Err)
	}
	_, admin := db.Connect(t, "postgres")
	var email string
	if err := admin.QueryRow(ctx, "SELECT email FROM customers WHERE id = 50").Scan(&email); err != nil || email != "siri.dahl@example.com" {
		t.Fatalf("customer 50 after the failed ANONYMIZE: %q %v", email, err)
	}
}
