package pgxsuite

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// db is the package's throwaway PostgreSQL cluster.
var db *pgtest.Cluster

// The password of pgx's test roles, as in its testsetup.
const password = "secret"

func TestMain(m *testing.M) {
	opts := pgtest.Options{HBA: []string{
		"host all pgx_md5 127.0.0.1/32 md5",
		"host all pgx_pw 127.0.0.1/32 password",
		"host all pgx_scram 127.0.0.1/32 scram-sha-256",
	}}
	os.Exit(pgtest.RunMain(m, opts, setupDB, &db))
}

// setupDB creates what pgx's testsetup/postgresql_setup.sql creates (but
// the roles for TLS and OAuth, which no run here uses), and the table the
// proxy's rules mask, so that the proxy runs with masking on.
func setupDB(c *pgtest.Cluster) error {
	ctx := context.Background()
	if err := c.Exec(ctx, "CREATE DATABASE pgx_test"); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, c.DSN("postgres", "", "pgx_test"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, sql := range []string{
		"CREATE EXTENSION hstore",
		"CREATE EXTENSION ltree",
		"CREATE DOMAIN uint64 AS numeric(20,0)",
		"SET password_encryption = md5; CREATE USER pgx_md5 SUPERUSER PASSWORD '" + password + "'",
		"SET password_encryption = 'scram-sha-256'; CREATE USER pgx_pw SUPERUSER PASSWORD '" + password + "'",
		"CREATE USER pgx_scram SUPERUSER PASSWORD '" + password + "'",
		`CREATE USER " tricky, ' } "" \ test user " SUPERUSER PASSWORD '` + password + "'",
		"CREATE SCHEMA pgveil_suite",
		"CREATE TABLE pgveil_suite.people (id int PRIMARY KEY, email text)",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// defaultPackages fit make test on a 2-core machine; make pgx-suite sets
// PGVEIL_PGX_PACKAGES=./... for the whole suite.
const defaultPackages = ". ./pgconn ./pgxpool ./stdlib"

// TestPgxSuite runs pgx's tests directly and through pgveil, and fails if
// a test that passed directly does not pass through the proxy, also when
// run again alone: some of pgx's tests have deadlines of a few seconds,
// which a loaded 2-core machine can miss either way, so a test that
// passes on its second run through the proxy is reported, not failed.
func TestPgxSuite(t *testing.T) {
	pkgs := strings.Fields(os.Getenv("PGVEIL_PGX_PACKAGES"))
	if len(pkgs) == 0 {
		pkgs = strings.Fields(defaultPackages)
	}
	run := os.Getenv("PGVEIL_PGX_RUN")
	src := pgxModuleDir(t)
	proxyAddr := startPgveil(t)
	start := time.Now()
	direct := runPgxTests(t, src, db.Addr(), run, pkgs)
	t.Logf("direct: %v", time.Since(start).Round(time.Second))
	start = time.Now()
	proxied := runPgxTests(t, src, proxyAddr, run, pkgs)
	t.Logf("through pgveil: %v", time.Since(start).Round(time.Second))
	t.Log("pgx tests (top-level; subtests in parentheses), directly and through pgveil:\n" + summary(direct, proxied))
	if skipped := direct.skipped(); len(skipped) > 0 {
		t.Logf("%d tests skip directly, and why:\n%s", len(skipped), direct.describeLines(skipped, 2))
	}
	if failedDirect := direct.failed(); len(failedDirect) > 0 {
		t.Logf("%d tests and subtests fail directly too (not counted against the proxy):\n%s", len(failedDirect), direct.describe(failedDirect))
	}
	lost := lostThroughProxy(direct, proxied, direct.keys())
	if len(lost) == 0 {
		return
	}
	t.Logf("%d tests and subtests pass directly but not through pgveil; running them again, alone:\n%s", len(lost), proxied.describe(lost))
	again := &results{result: map[string]string{}, output: map[string][]string{}}
	for pkg, tests := range topLevel(lost) {
		r := runPgxTests(t, src, proxyAddr, "^("+strings.Join(tests, "|")+")$", []string{pkg})
		maps.Copy(again.result, r.result)
		maps.Copy(again.output, r.output)
	}
	if still := lostThroughProxy(direct, again, lost); len(still) > 0 {
		t.Errorf("%d tests and subtests pass directly but not through pgveil, twice:\n%s", len(still), again.describe(still))
	} else {
		t.Logf("all %d passed through pgveil on their second run", len(lost))
	}
}

// lostThroughProxy are the tests of keys that passed directly but not
// through the proxy.
func lostThroughProxy(direct, proxied *results, keys []string) []string {
	var lost []string
	for _, k := range keys {
		if direct.result[k] == "pass" && proxied.result[k] != "pass" {
			lost = append(lost, k)
		}
	}
	return lost
}

// topLevel groups the top-level tests of keys by package, their names
// quoted for go test -run.
func topLevel(keys []string) map[string][]string {
	out := map[string][]string{}
	for _, k := range keys {
		pkg, test, _ := strings.Cut(k, " ")
		test, _, _ = strings.Cut(test, "/")
		if name := regexp.QuoteMeta(test); !slices.Contains(out[pkg], name) {
			out[pkg] = append(out[pkg], name)
		}
	}
	return out
}

// pgxModuleDir is where the go command keeps the pgx module pgveil builds
// with. The tests run there: the directory is read-only, but go.sum lists
// every test dependency, and a fixed path lets the build cache keep the
// compiled tests from one run to the next.
func pgxModuleDir(t *testing.T) string {
	out, err := exec.Command(goTool(t), "list", "-m", "-f", "{{.Dir}}", "github.com/jackc/pgx/v5").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("go list -m github.com/jackc/pgx/v5: %v (run go mod download)", err)
	}
	return dir
}

// goTool is the go command of the toolchain running this test.
func goTool(t *testing.T) string {
	bin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	bin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("the go command is not on PATH")
	}
	return bin
}

// startPgveil builds pgveil and runs it in front of the cluster with
// rules that mask a table of pgx_test and leave pgx's roles unmasked. It
// returns the address it listens on, and stops it when the test ends.
func startPgveil(t *testing.T) string {
	dir := t.TempDir()
	bin := filepath.Join(dir, "pgveil")
	build := exec.Command(goTool(t), "build", "-o", bin, "github.com/pgveil/pgveil/cmd/pgveil")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build pgveil: %v\n%s", err, out)
	}
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := fmt.Sprintf(`listen: %s
upstream: %s
admin_dsn: %s
roles:
  unmasked: [postgres, pgx_md5, pgx_pw, pgx_scram]
tables:
  pgveil_suite.people:
    key: id
    columns:
      email: {mask: email}
`, addr, db.Addr(), db.DSN("postgres", "", "pgx_test"))
	path := filepath.Join(dir, "pgveil.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "pgveil.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	proc, err := pgtest.StartProcess(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proc.Stop(syscall.SIGTERM, 30*time.Second); err != nil {
			t.Errorf("pgveil: %v", err)
		}
		logFile.Close()
		if t.Failed() {
			t.Logf("pgveil's log (last lines):\n%s", pgtest.Tail(logPath, 4096))
		}
	})
	waitAccepts(t, addr, proc)
	return addr
}

// waitAccepts polls addr until it accepts a connection, the process
// exits, or a deadline passes.
func waitAccepts(t *testing.T, addr string, proc *pgtest.Process) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-proc.Done():
			t.Fatalf("pgveil exited before it listened: %v", proc.Err())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgveil never accepted on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pgxEnv is the environment of a pgx test run against addr: the caller's,
// without the PG* variables that could redirect it, with pgx's connection
// strings.
func pgxEnv(addr string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "GOFLAGS=") {
			env = append(env, kv)
		}
	}
	host, port, _ := net.SplitHostPort(addr)
	conn := func(user string) string {
		return fmt.Sprintf("host=%s port=%s user=%s password=%s dbname=pgx_test sslmode=disable", host, port, user, password)
	}
	return append(env, "GOWORK=off",
		"PGX_TEST_DATABASE="+conn("pgx_md5"),
		"PGX_TEST_TCP_CONN_STRING="+conn("pgx_md5"),
		"PGX_TEST_MD5_PASSWORD_CONN_STRING="+conn("pgx_md5"),
		"PGX_TEST_PLAIN_PASSWORD_CONN_STRING="+conn("pgx_pw"),
		"PGX_TEST_SCRAM_PASSWORD_CONN_STRING="+conn("pgx_scram"))
}

// results are the outcomes of one run: per "package test" key, the
// final action (pass, fail, skip) and the test's output.
type results struct {
	result map[string]string
	output map[string][]string
}

// runPgxTests runs go test -json on pkgs of the pgx module in src against
// the server (or proxy) at addr; run, when not empty, is go test's -run.
func runPgxTests(t *testing.T, src, addr, run string, pkgs []string) *results {
	args := []string{"test", "-json", "-count=1", "-timeout", "15m"}
	if run != "" {
		args = append(args, "-run", run)
	}
	args = append(args, pkgs...)
	cmd := exec.Command(goTool(t), args...)
	cmd.Dir, cmd.Env = src, pgxEnv(addr)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := readEvents(stdout)
	if err := cmd.Wait(); err != nil && len(r.result) == 0 {
		t.Fatalf("go test %s: %v\n%s", strings.Join(pkgs, " "), err, stderr.String())
	}
	return r
}

// readEvents reads go test -json's events.
func readEvents(rd io.Reader) *results {
	r := &results{result: map[string]string{}, output: map[string][]string{}}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64*1024), 16<<20)
	for sc.Scan() {
		var ev struct{ Action, Package, Test, Output string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		key := ev.Package + " " + randomDigits.ReplaceAllString(ev.Test, "#")
		if ev.Test == "" {
			key = ev.Package + " (package)"
		}
		switch ev.Action {
		case "pass", "fail", "skip":
			r.record(key, ev.Action)
		case "output":
			r.output[key] = append(r.output[key], ev.Output)
		}
	}
	return r
}

// randomDigits are runs of digits long enough to come from a random
// temporary directory in a subtest's name (pgconn's
// TestParseConfigSSLCertMode/servicefile='/tmp/TestParseConfig...1623756738/001/...').
// They are replaced, so that both runs name the subtest alike.
var randomDigits = regexp.MustCompile(`[0-9]{6,}`)

// record notes a test's result. Names made alike by randomDigits keep the
// worst: fail over skip over pass.
func (r *results) record(key, action string) {
	rank := map[string]int{"": 0, "pass": 1, "skip": 2, "fail": 3}
	if rank[action] > rank[r.result[key]] {
		r.result[key] = action
	}
}

// keys are the tests of the run, sorted; packages as a whole left out.
func (r *results) keys() []string {
	var keys []string
	for k := range r.result {
		if !strings.HasSuffix(k, " (package)") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// skipped are the top-level tests that skipped.
func (r *results) skipped() []string {
	var out []string
	for _, k := range r.keys() {
		if _, test, _ := strings.Cut(k, " "); r.result[k] == "skip" && !strings.Contains(test, "/") {
			out = append(out, k)
		}
	}
	return out
}

// failed are the tests and subtests that failed, and packages that
// failed with no test failing (a build error, a panic).
func (r *results) failed() []string {
	var out []string
	for _, k := range r.keys() {
		if r.result[k] == "fail" {
			out = append(out, k)
		}
	}
	for k, res := range r.result {
		pkg, isPkg := strings.CutSuffix(k, " (package)")
		if isPkg && res == "fail" && !slices.ContainsFunc(out, func(s string) bool { return strings.HasPrefix(s, pkg+" ") }) {
			out = append(out, k)
		}
	}
	return out
}

// describe lists tests with the last lines of their output.
func (r *results) describe(keys []string) string { return r.describeLines(keys, 8) }

// describeLines lists tests with the last n lines of their output.
func (r *results) describeLines(keys []string, n int) string {
	var b strings.Builder
	for _, k := range keys {
		res := r.result[k]
		if res == "" {
			res = "not run"
		}
		fmt.Fprintf(&b, "  %s: %s\n", k, res)
		lines := r.output[k]
		for _, l := range lines[max(0, len(lines)-n):] {
			b.WriteString("      " + l)
		}
	}
	return b.String()
}

// counts are one package's results: pass, fail, skip of its top-level
// tests ([0]) and of their subtests ([1]).
type counts [2][3]int

func (c *counts) String() string {
	return fmt.Sprintf("%d/%d/%d (%d/%d/%d)", c[0][0], c[0][1], c[0][2], c[1][0], c[1][1], c[1][2])
}

// perPackage counts a run's results by package.
func (r *results) perPackage() map[string]*counts {
	col := map[string]int{"pass": 0, "fail": 1, "skip": 2}
	m := map[string]*counts{}
	for _, k := range r.keys() {
		pkg, test, _ := strings.Cut(k, " ")
		if m[pkg] == nil {
			m[pkg] = &counts{}
		}
		row := 0
		if strings.Contains(test, "/") {
			row = 1
		}
		m[pkg][row][col[r.result[k]]]++
	}
	return m
}

// summary tabulates both runs per package.
func summary(direct, proxied *results) string {
	d, p := direct.perPackage(), proxied.perPackage()
	var b strings.Builder
	fmt.Fprintf(&b, "  %-48s %-28s %s\n", "PACKAGE", "DIRECT pass/fail/skip", "THROUGH PGVEIL pass/fail/skip")
	for _, pkg := range slices.Sorted(maps.Keys(d)) {
		if p[pkg] == nil {
			p[pkg] = &counts{}
		}
		fmt.Fprintf(&b, "  %-48s %-28s %s\n", pkg, d[pkg], p[pkg])
	}
	return b.String()
}
