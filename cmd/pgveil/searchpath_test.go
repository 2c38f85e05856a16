package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The search_path tests: a masked session changes its search_path in every
// way the server knows, and after every step the same probe runs on a
// direct connection (the truth: which table the server reads) and through
// pgveil. Where the server reads the protected table, pgveil must mask; where
// it reads an unprotected one, pgveil must pass the value through exactly,
// which shows that the analyser followed the path rather than guessed.

const pathSchemaSQL = `
DROP SCHEMA IF EXISTS sp_a, sp_b, sp_c, sp_user CASCADE;
DROP TABLE IF EXISTS public.sp_t CASCADE;
DROP ROLE IF EXISTS sp_user;
CREATE ROLE sp_user LOGIN;
CREATE SCHEMA sp_a; CREATE SCHEMA sp_b; CREATE SCHEMA sp_c; CREATE SCHEMA sp_user;
CREATE TABLE sp_a.t (v text); INSERT INTO sp_a.t VALUES ('Secret-A');
CREATE TABLE sp_b.t (v text); INSERT INTO sp_b.t VALUES ('Plain-B');
CREATE TABLE sp_c.t (v text); INSERT INTO sp_c.t VALUES ('Plain-C');
CREATE TABLE sp_user.t (v text); INSERT INTO sp_user.t VALUES ('Plain-User');
GRANT USAGE ON SCHEMA sp_a, sp_b, sp_user TO sp_user; -- none on sp_c: the server skips it
GRANT SELECT ON ALL TABLES IN SCHEMA sp_a, sp_b, sp_c, sp_user TO sp_user;
ALTER ROLE sp_user SET search_path = sp_a;
CREATE TABLE public.sp_t (v text); INSERT INTO public.sp_t VALUES ('Secret-A');
CREATE VIEW public.sp_view AS SELECT v FROM public.sp_t; -- pg_get_viewdef may print it unqualified
CREATE TABLE sp_b.sp_t (v text); INSERT INTO sp_b.sp_t VALUES ('Plain-B');
GRANT SELECT ON public.sp_t, public.sp_view, sp_b.sp_t TO sp_user;
`

const pathRules = `
roles:
  unmasked: [postgres]
tables:
  sp_a.t:
    columns:
      v: {mask: redact}
  public.sp_t:
    columns:
      v: {mask: redact}
`

// pathProbe reads t through the path; lower() makes the value computed,
// so only the analysis (not the column's origin) can mask it.
const pathProbe = "SELECT lower(v) FROM t"

const pathSecret = "secret-a"

func setupPathSchema(t *testing.T) *maskingProxy {
	t.Helper()
	if err := db.Exec(testCtx(t), pathSchemaSQL); err != nil {
		t.Fatal(err)
	}
	return startProxyRules(t, pathRules, "")
}

// pathScenarios are statement sequences; the probe runs after each step.
var pathScenarios = [][]string{
	{"SET search_path = sp_b", "SET search_path = sp_a", "SET search_path TO DEFAULT", "SET search_path = sp_b", "RESET search_path"},
	{"BEGIN", "SET search_path = sp_b", "ROLLBACK"},
	{"BEGIN", "SET search_path = sp_b", "COMMIT"},
	{"BEGIN", "SET LOCAL search_path = sp_b", "COMMIT"},
	{"BEGIN", "SET search_path = sp_b", "SET LOCAL search_path = sp_a", "COMMIT"},
	{"SET search_path = sp_b", "BEGIN", "SET LOCAL search_path = sp_a", "ROLLBACK"},
	{"BEGIN", "SAVEPOINT s", "SET search_path = sp_b", "ROLLBACK TO s", "SET search_path = sp_b", "RELEASE s", "COMMIT"},
	{"BEGIN", "SET search_path = sp_b", "SAVEPOINT s", "SET search_path = sp_a", "SAVEPOINT s", "SET search_path = sp_b",
		"ROLLBACK TO s", "RELEASE s", "ROLLBACK TO s", "COMMIT"},
	{"BEGIN", "SET search_path = sp_b", "SELECT 1/0", "ROLLBACK"},
	{"BEGIN", "SET search_path = sp_b", "SELECT 1/0", "COMMIT"},
	{"BEGIN", "SET search_path = sp_b", "SAVEPOINT s", "SET search_path = sp_a", "SELECT 1/0", "ROLLBACK TO s", "COMMIT"},
	{"SET search_path = sp_b", "BEGIN", "RESET search_path", "ROLLBACK", "BEGIN", "RESET search_path", "COMMIT"},
	{"SELECT pg_catalog.set_config('search_path', 'sp_b', false)", "SELECT set_config('search_path', 'sp_a', true)"},
	{"BEGIN", "SELECT set_config('search_path', 'sp_b', true)", "COMMIT"},
	{"SELECT set_config('search_path', ' SP_B , \"sp_a\"', false)", "SELECT set_config('search_path', '\"SP_B\", sp_a', false)"},
	{"SELECT set_config('search_path', '', false)", "SET search_path = ''"},
	{"SET search_path = \"$user\", sp_a", "SET search_path = sp_b, \"$user\""},
	{"SET search_path = sp_c, sp_a", "SET search_path = sp_c, sp_b"},
	{"SET search_path = pg_temp, sp_b", "SET search_path = sp_b, pg_catalog, sp_a"},
	{"SET search_path = sp_b; SELECT 1/0"},
	{"SELECT 1; SET search_path = sp_b"},
	{"BEGIN; SET search_path = sp_b; COMMIT"},
	{"BEGIN", "SET search_path = sp_b", "COMMIT AND CHAIN", "SET LOCAL search_path = sp_a", "ROLLBACK"},
	{"SET search_path = sp_b", "DISCARD ALL"},
}

func TestSearchPathFollowed(t *testing.T) {
	p := setupPathSchema(t)
	for i, steps := range pathScenarios {
		for _, proto := range []string{protoSimple, protoExtended} {
			if proto == protoExtended && strings.Contains(strings.Join(steps, ""), ";") {
				continue // a text of several statements is simple-protocol only
			}
			t.Run(fmt.Sprintf("%d-%s", i, proto), func(t *testing.T) {
				direct, proxied := dialBoth(t, p, nil)
				comparePaths(t, direct, proxied, "login")
				for _, step := range steps {
					run := func(c *rawConn) *rawResult { return runStep(t, c, step, proto) }
					want, got := run(direct), run(proxied)
					if (want.Err() == nil) != (got.Err() == nil) || want.TxStatus != got.TxStatus {
						t.Fatalf("%s: server %s (status %c), through pgveil %s (status %c)", step, want, want.TxStatus, got, got.TxStatus)
					}
					if want.TxStatus != 'E' {
						comparePaths(t, direct, proxied, step)
					}
				}
			})
		}
	}
}

// dialParams logs in as sp_user with startup parameters, or fails the test.
func dialParams(t *testing.T, addr string, params map[string]string) *rawConn {
	t.Helper()
	c, e, err := rawDial(addr, "sp_user", params)
	if err != nil {
		t.Fatal(err)
	}
	if e != nil {
		t.Fatalf("login: %s %s", e.Code, e.Message)
	}
	t.Cleanup(c.Close)
	return c
}

// dialBoth logs in directly and through pgveil with the same parameters.
func dialBoth(t *testing.T, p *maskingProxy, params map[string]string) (direct, proxied *rawConn) {
	t.Helper()
	return dialParams(t, db.Addr(), params), dialParams(t, p.addr, params)
}

func runStep(t *testing.T, c *rawConn, sql, proto string) *rawResult {
	t.Helper()
	r, err := c.Run(sql, proto)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return r
}

// comparePaths runs the probe on both connections: pgveil must mask what
// the server reads from sp_a.t, and pass anything else through unchanged.
func comparePaths(t *testing.T, direct, proxied *rawConn, after string) {
	t.Helper()
	want, err := direct.Simple(pathProbe)
	if err != nil {
		t.Fatalf("after %s: direct probe: %v", after, err)
	}
	got, err := proxied.Simple(pathProbe)
	if err == nil && want.Err() != nil { // no t on the path
		if got.Err() == nil {
			t.Fatalf("after %s: the server found no t, pgveil returned %s", after, got)
		}
		return
	}
	if err != nil || got.Err() != nil || len(got.Rows) != 1 || len(want.Rows) != 1 {
		t.Fatalf("after %s: probe through pgveil: %v %s", after, err, got)
	}
	truth, seen := string(want.Rows[0][0]), string(got.Rows[0][0])
	switch {
	case strings.Contains(strings.ToLower(string(got.Raw)), pathSecret):
		t.Fatalf("LEAK after %s: the server read sp_a.t (%q) and pgveil passed %q", after, truth, seen)
	case truth == pathSecret && seen == truth:
		t.Fatalf("after %s: unmasked", after)
	case truth != pathSecret && seen != truth:
		t.Fatalf("after %s: the server read %q, pgveil returned %q: the analyser does not follow the path", after, truth, seen)
	}
}

// TestSearchPathAtLogin: startup options and ALTER ROLE ... SET give the
// path a session starts with, and RESET returns to it.
func TestSearchPathAtLogin(t *testing.T) {
	p := setupPathSchema(t)
	for _, params := range []map[string]string{
		nil,
		{"options": "-c search_path=sp_b"},
		{"options": "-c search_path=sp_a,sp_b"},
		{"search_path": "sp_b"},
	} {
		t.Run(fmt.Sprint(params), func(t *testing.T) {
			direct, proxied := dialBoth(t, p, params)
			comparePaths(t, direct, proxied, "login")
			for _, step := range []string{"SET search_path = sp_a", "RESET search_path"} {
				runStep(t, direct, step, protoSimple)
				runStep(t, proxied, step, protoSimple)
				comparePaths(t, direct, proxied, step)
			}
		})
	}
	// ALTER ROLE ... SET applies from the next login, through pgveil too.
	c := mustDial(t, p.addr)
	if r := runStep(t, c, "ALTER ROLE sp_user SET search_path = sp_b", protoSimple); r.Err() != nil {
		t.Fatalf("ALTER ROLE: %s", r)
	}
	comparePaths(t, mustDialPath(t, db.Addr(), "sp_a"), c, "ALTER ROLE (this session)")
	comparePaths(t, mustDial(t, db.Addr()), mustDial(t, p.addr), "ALTER ROLE (next login)")
}

func mustDial(t *testing.T, addr string) *rawConn { return dialParams(t, addr, nil) }

// TestSearchPathAttacks: ways to make a name mean, when the server runs a
// statement, another relation than the one the analyser checked.
func TestSearchPathAttacks(t *testing.T) {
	p := setupPathSchema(t)
	refusedNoLeak := func(t *testing.T, r *rawResult, what string) {
		t.Helper()
		if strings.Contains(strings.ToLower(string(r.Raw)), pathSecret) {
			t.Fatalf("LEAK (%s): %s", what, r)
		}
		if e := r.Err(); e == nil || e.Code != "42501" {
			t.Fatalf("%s: want a 42501 refusal, got %s", what, r)
		}
	}
	t.Run("statement prepared under another path", func(t *testing.T) {
		c := mustDial(t, p.addr)
		runStep(t, c, "SET search_path = sp_b", protoSimple)
		c.fe.SendParse(&pgproto3.Parse{Name: "probe", Query: pathProbe})
		c.fe.SendSync(&pgproto3.Sync{})
		if r, err := c.collect(); err != nil || r.Err() != nil {
			t.Fatalf("Parse: %v %s", err, r)
		}
		runStep(t, c, "SET search_path = sp_a", protoSimple)
		refusedNoLeak(t, executeStatement(t, c, "probe"), "Bind after the path changed")
		runStep(t, c, "SET search_path = sp_b", protoSimple) // back to the path it was prepared under
		if r := executeStatement(t, c, "probe"); r.Err() != nil || len(r.Rows) != 1 || string(r.Rows[0][0]) != "plain-b" {
			t.Fatalf("Bind under the path it was prepared under: %s", r)
		}
	})
	t.Run("SQL PREPARE under another path", func(t *testing.T) {
		c := mustDial(t, p.addr)
		runStep(t, c, "SET search_path = sp_b", protoSimple)
		runStep(t, c, "PREPARE probe AS "+pathProbe, protoSimple)
		runStep(t, c, "SET search_path = sp_a", protoSimple)
		refusedNoLeak(t, runStep(t, c, "EXECUTE probe", protoSimple), "EXECUTE after the path changed")
	})
	t.Run("query pipelined behind a path change", func(t *testing.T) {
		c := mustDial(t, p.addr)
		runStep(t, c, "SET search_path = sp_b", protoSimple)
		c.fe.Send(&pgproto3.Query{String: "SET search_path = sp_a"})
		c.fe.Send(&pgproto3.Query{String: pathProbe})
		first, err := c.collect()
		if err != nil || first.Err() != nil {
			t.Fatalf("SET: %v %s", err, first)
		}
		second, err := c.collect()
		if err != nil {
			t.Fatal(err)
		}
		refusedNoLeak(t, second, "a query sent before the SET's answer")
	})
	t.Run("extended pipeline behind set_config", func(t *testing.T) {
		c := mustDial(t, p.addr)
		runStep(t, c, "SET search_path = sp_b", protoSimple)
		c.fe.SendParse(&pgproto3.Parse{Query: "SELECT pg_catalog.set_config('search_path', 'sp_a', false)"})
		c.fe.SendBind(&pgproto3.Bind{})
		c.fe.SendExecute(&pgproto3.Execute{})
		c.fe.SendParse(&pgproto3.Parse{Name: "p2", Query: pathProbe})
		c.fe.SendBind(&pgproto3.Bind{PreparedStatement: "p2"})
		c.fe.SendExecute(&pgproto3.Execute{})
		c.fe.SendSync(&pgproto3.Sync{})
		r, err := c.collect()
		if err != nil {
			t.Fatal(err)
		}
		refusedNoLeak(t, r, "a Parse sent before set_config's Sync")
		// The refusal failed the pipeline's implicit transaction, so the
		// set_config was rolled back: the path is still sp_b.
		comparePaths(t, mustDialPath(t, db.Addr(), "sp_b"), c, "the failed pipeline")
	})
	t.Run("view whose definition names a table the path now shadows", func(t *testing.T) {
		c := mustDial(t, p.addr)
		runStep(t, c, "SET search_path = sp_b, public", protoSimple)
		r := runStep(t, c, "SELECT lower(v) FROM sp_view", protoSimple)
		if strings.Contains(strings.ToLower(string(r.Raw)), pathSecret) || r.Err() != nil || len(r.Rows) != 1 {
			t.Fatalf("the view reads public.sp_t: want it masked, got %s", r)
		}
	})
	t.Run("set_config that may not run once", func(t *testing.T) {
		c := mustDial(t, p.addr)
		runStep(t, c, "SET search_path = sp_b", protoSimple)
		for _, sql := range []string{
			"SELECT set_config('search_path', 'sp_a', false) FROM sp_b.t",
			"SELECT 1 WHERE random() < 0.5 AND set_config('search_path', 'sp_a', false) <> ''",
			"SELECT set_config('search_path', 'sp_a', false), lower(v) FROM t",
			"SELECT set_config('search_path', 'sp_a', false); " + pathProbe,
		} {
			refusedNoLeak(t, runStep(t, c, sql, protoSimple), sql)
		}
		comparePaths(t, mustDialPath(t, db.Addr(), "sp_b"), c, "the refused set_config calls")
	})
}

// executeStatement binds and runs a prepared statement.
func executeStatement(t *testing.T, c *rawConn, name string) *rawResult {
	t.Helper()
	c.fe.SendBind(&pgproto3.Bind{PreparedStatement: name})
	c.fe.SendExecute(&pgproto3.Execute{})
	c.fe.SendSync(&pgproto3.Sync{})
	r, err := c.collect()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// mustDialPath connects directly with a search_path set.
func mustDialPath(t *testing.T, addr, path string) *rawConn {
	c := mustDial(t, addr)
	if r := runStep(t, c, "SET search_path = "+path, protoSimple); r.Err() != nil {
		t.Fatalf("SET: %s", r)
	}
	return c
}
