package packaging

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/rules"
)

var db *pgtest.Cluster

func TestMain(m *testing.M) {
	code := pgtest.RunMain(m, pgtest.Options{}, nil, &db)
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// built is the package make deb wrote, built once for every test.
var built struct {
	once sync.Once
	dir  string // holds all of it, removed after the tests
	deb  string // the .deb
	root string // its files, extracted
	ctrl string // its control files, extracted
	// version is what version.sh said before the build: the tree may change
	// while the tests run.
	version string
	err     error
}

// deb builds the package once with make deb, and extracts it.
func deb(t *testing.T) (pkg, root, ctrl string) {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "pgveil-deb-")
		if err != nil {
			built.err = err
			return
		}
		built.dir = dir
		out, err := run("deb/version.sh")
		if err != nil {
			built.err = err
			return
		}
		built.version = strings.TrimSpace(out)
		built.deb, built.err = makeDeb(filepath.Join(dir, "out"))
		if built.err != nil {
			return
		}
		built.root, built.ctrl = filepath.Join(dir, "root"), filepath.Join(dir, "DEBIAN")
		if _, err := run("dpkg-deb", "-x", built.deb, built.root); err != nil {
			built.err = err
		} else if _, err := run("dpkg-deb", "-e", built.deb, built.ctrl); err != nil {
			built.err = err
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.deb, built.root, built.ctrl
}

// makeDeb runs make deb with the package written to out, and returns the
// path that build.sh printed last.
func makeDeb(out string) (string, error) {
	text, err := run("make", "-s", "-C", "..", "deb", "DEBOUT="+out)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	pkg := lines[len(lines)-1]
	if !strings.HasPrefix(pkg, out+"/pgveil_") || !strings.HasSuffix(pkg, ".deb") {
		return "", fmt.Errorf("make deb printed %q, not the package's path", text)
	}
	return pkg, nil
}

// run runs a command and returns its standard output; the error holds its
// standard error.
func run(name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tool is the path of an optional tool. Missing, the test is skipped,
// except under CI, whose .ci/run installs it.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing; .ci/run installs it", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// TestDebControl checks the control fields, the conffile and the
// maintainer scripts.
func TestDebControl(t *testing.T) {
	pkg, _, ctrl := deb(t)
	version := built.version
	arch := strings.TrimSpace(mustRun(t, "dpkg", "--print-architecture"))
	if want := "pgveil_" + version + "_" + arch + ".deb"; filepath.Base(pkg) != want {
		t.Errorf("package file %s, want %s", filepath.Base(pkg), want)
	}
	want := map[string]*regexp.Regexp{
		"Package":      regexp.MustCompile(`^pgveil$`),
		"Version":      regexp.MustCompile(`^` + regexp.QuoteMeta(version) + `$`),
		"Architecture": regexp.MustCompile(`^` + arch + `$`),
		"Maintainer":   regexp.MustCompile(`^[^<]+ <[^@>]+@[^>]+>$`),
		"Depends":      regexp.MustCompile(`^adduser, libc6 \(>= [0-9.]+\)$`),
		"Section":      regexp.MustCompile(`^database$`),
		"Priority":     regexp.MustCompile(`^optional$`),
		"Description":  regexp.MustCompile(`^PostgreSQL proxy that masks personal data`),
	}
	for field, re := range want {
		if v := strings.TrimSpace(mustRun(t, "dpkg-deb", "-f", pkg, field)); !re.MatchString(strings.SplitN(v, "\n", 2)[0]) {
			t.Errorf("%s: %q, want %s", field, v, re)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(ctrl, "conffiles")); string(got) != "/etc/pgveil/pgveil.yaml\n" {
		t.Errorf("conffiles: %q", got)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		path := filepath.Join(ctrl, s)
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v %v, want mode 0755", s, fi, err)
			continue
		}
		mustRun(t, "sh", "-n", path)
	}
	// The service is never enabled nor started by the package.
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		text, _ := os.ReadFile(filepath.Join(ctrl, s))
		if regexp.MustCompile(`(^|[^-\w])(enable|start|restart) pgveil`).Match(text) {
			t.Errorf("%s enables or starts the service:\n%s", s, text)
		}
	}
}

// TestDebContents checks the file list: paths, modes and owners.
func TestDebContents(t *testing.T) {
	pkg, _, _ := deb(t)
	want := map[string]string{
		"./usr/bin/pgveil":                                       "-rwxr-xr-x",
		"./etc/pgveil/pgveil.yaml":                               "-rw-r--r--",
		"./lib/systemd/system/pgveil.service":                    "-rw-r--r--",
		"./usr/share/doc/pgveil/copyright":                       "-rw-r--r--",
		"./usr/share/doc/pgveil/changelog.gz":                    "-rw-r--r--",
		"./usr/share/doc/pgveil/README.md.gz":                    "-rw-r--r--",
		"./usr/share/man/man1/pgveil.1.gz":                       "-rw-r--r--",
		"./usr/share/doc/pgveil/examples/grafana-dashboard.json": "-rw-r--r--",
		"./usr/share/doc/pgveil/examples/prometheus-alerts.yaml": "-rw-r--r--",
	}
	sc := bufio.NewScanner(strings.NewReader(mustRun(t, "dpkg-deb", "-c", pkg)))
	for sc.Scan() {
		f := strings.Fields(sc.Text()) // mode owner size date time path
		if len(f) != 6 {
			t.Fatalf("dpkg-deb -c line %q", sc.Text())
		}
		mode, owner, path := f[0], f[1], f[5]
		if owner != "root/root" {
			t.Errorf("%s is owned by %s", path, owner)
		}
		if strings.HasSuffix(path, "/") {
			if mode != "drwxr-xr-x" {
				t.Errorf("directory %s has mode %s", path, mode)
			}
			continue
		}
		w, ok := want[path]
		if !ok {
			t.Errorf("unexpected file %s", path)
			continue
		}
		if mode != w {
			t.Errorf("%s has mode %s, want %s", path, mode, w)
		}
		delete(want, path)
	}
	for path := range want {
		t.Errorf("the package lacks %s", path)
	}
}

// TestDebLintian runs lintian: not one error or warning. The tags it may
// still print are informational (I:), such as the Go linker's .comment
// section.
func TestDebLintian(t *testing.T) {
	lintian := tool(t, "lintian")
	pkg, _, _ := deb(t)
	out, err := run(lintian, "--fail-on", "error,warning", "--tag-display-limit", "0", pkg)
	if err != nil {
		t.Fatalf("lintian: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "E:") || strings.HasPrefix(line, "W:") {
			t.Errorf("lintian: %s", line)
		}
	}
	if out != "" {
		t.Logf("lintian (informational tags only):\n%s", out)
	}
}

// TestDebBinary runs the packaged binary: its version is the package's,
// and check has its help.
func TestDebBinary(t *testing.T) {
	pkg, root, _ := deb(t)
	bin := filepath.Join(root, "usr/bin/pgveil")
	version := strings.TrimSpace(mustRun(t, "dpkg-deb", "-f", pkg, "Version"))
	out := mustRun(t, bin, "--version")
	if first := strings.SplitN(out, "\n", 2)[0]; first != "pgveil "+version {
		t.Errorf("--version: %q, want %q", first, "pgveil "+version)
	}
	commit := strings.TrimSpace(mustRun(t, "git", "rev-parse", "HEAD"))
	if !strings.Contains(out, "commit:   "+commit) {
		t.Errorf("--version does not name commit %s:\n%s", commit, out)
	}
	cmd := exec.Command(bin, "check", "--help")
	help, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(help), "Usage: pgveil check") || !strings.Contains(string(help), "-config") {
		t.Errorf("check --help: %v\n%s", err, help)
	}
}

// TestDebManPage checks that the manual page describes every command the
// packaged binary lists.
func TestDebManPage(t *testing.T) {
	_, root, _ := deb(t)
	f, err := os.Open(filepath.Join(root, "usr/share/man/man1/pgveil.1.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	help, _ := exec.Command(filepath.Join(root, "usr/bin/pgveil"), "--help").CombinedOutput()
	commands := regexp.MustCompile(`(?m)^  ([a-z]+) +\S`).FindAllStringSubmatch(string(help), -1)
	for _, m := range commands {
		if !bytes.Contains(page, []byte("\n.TP\n.B "+m[1]+"\n")) {
			t.Errorf("the manual page lacks the command %s", m[1])
		}
	}
	if len(commands) < 8 {
		t.Errorf("pgveil --help lists %d commands, want at least 8:\n%s", len(commands), help)
	}
}

// TestDebUnit checks the unit's settings, and has systemd-analyze verify it
// against the package's own files and rate its exposure.
func TestDebUnit(t *testing.T) {
	_, root, _ := deb(t)
	unit := filepath.Join(root, "lib/systemd/system/pgveil.service")
	text, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"User=pgveil", "Group=pgveil",
		"ExecStart=/usr/bin/pgveil serve --config /etc/pgveil/pgveil.yaml",
		"ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
		"NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"CapabilityBoundingSet=", "AmbientCapabilities=", "WantedBy=multi-user.target",
	} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).Match(text) {
			t.Errorf("the unit lacks the line %s", line)
		}
	}
	analyze := tool(t, "systemd-analyze")
	// verify checks that ExecStart's binary is there and executable: a copy
	// of the unit names the packaged one.
	copied := filepath.Join(t.TempDir(), "pgveil.service")
	bin := filepath.Join(root, "usr/bin/pgveil")
	if err := os.WriteFile(copied, bytes.ReplaceAll(text, []byte("ExecStart=/usr/bin/pgveil "), []byte("ExecStart="+bin+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, analyze, "verify", "--man=no", copied)
	out := mustRun(t, analyze, "security", "--offline=yes", copied)
	m := regexp.MustCompile(`Overall exposure level for pgveil.service: ([0-9.]+) (\w+)`).FindStringSubmatch(out)
	if m == nil || m[2] != "OK" {
		t.Errorf("systemd-analyze security: want exposure rated OK, got:\n%s", out)
	} else {
		t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
	}
}

// TestDebCopyright checks that the copyright file names every module the
// packaged binary was built from.
func TestDebCopyright(t *testing.T) {
	_, root, _ := deb(t)
	copyright, err := os.ReadFile(filepath.Join(root, "usr/share/doc/pgveil/copyright"))
	if err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "go", "version", "-m", filepath.Join(root, "usr/bin/pgveil"))
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "dep" {
			continue
		}
		n++
		if !bytes.Contains(copyright, []byte(" "+f[1]+"/*")) {
			t.Errorf("copyright does not name the module %s", f[1])
		}
	}
	if n == 0 {
		t.Fatalf("go version -m listed no module:\n%s", out)
	}
}

// TestDebVersion checks how git describe becomes a Debian version, and
// that what cannot be one is refused with a message.
func TestDebVersion(t *testing.T) {
	for describe, want := range map[string]string{
		"v1.2.3":                        "1.2.3",
		"v1.2.3-rc1":                    "1.2.3~rc1",
		"v1.2.3-4-gabc1234":             "1.2.3+4.gabc1234",
		"abc1234":                       "0.0~git20261203.abc1234",
		"abc1234-dirty":                 "0.0~git20261203.abc1234~dirty",
		"v0.9.0-rc2-12-g0123abcd-dirty": "0.9.0~rc2+12.g0123abcd~dirty",
	} {
		if got, err := run("deb/version.sh", describe, "20261203"); err != nil || strings.TrimSpace(got) != want {
			t.Errorf("%s: %q %v, want %q", describe, got, err, want)
		}
	}
	// Debian's own comparison agrees with the order of releases.
	order := []string{"0.0~git20261203.abc1234", "1.2.3~rc1", "1.2.3", "1.2.3+4.gabc1234~dirty", "1.2.3+4.gabc1234", "1.2.3+5.g0000000"}
	for i := 1; i < len(order); i++ {
		mustRun(t, "dpkg", "--compare-versions", order[i-1], "lt", order[i])
	}
	if _, err := run("deb/version.sh", "release-1", "20261203"); err == nil || !strings.Contains(err.Error(), `"release~1" is not a Debian version`) {
		t.Errorf("release-1: want a refusal naming the version, got %v", err)
	}
}

// TestDebExampleConfig runs the packaged binary with the shipped example
// configuration (its addresses pointed at a throwaway PostgreSQL): a plain
// proxy that answers queries, reloads on SIGHUP and stops cleanly on
// SIGTERM, as the unit's ExecReload and stop do. The commented-out sample
// rules, once uncommented, are a valid configuration too.
func TestDebExampleConfig(t *testing.T) {
	_, root, _ := deb(t)
	example, err := os.ReadFile(filepath.Join(root, "etc/pgveil/pgveil.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rules.Parse(uncomment(example)); err != nil {
		t.Errorf("the example's commented-out settings, uncommented: %v", err)
	}
	port, err := pgtest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := regexp.MustCompile(`(?m)^listen: \S+`).ReplaceAll(example, []byte("listen: "+listen))
	cfg = regexp.MustCompile(`(?m)^upstream: \S+`).ReplaceAll(cfg, []byte("upstream: "+db.Addr()))
	if bytes.Equal(cfg, example) {
		t.Fatal("the example has no listen or upstream line to point at the test server")
	}
	path := filepath.Join(t.TempDir(), "pgveil.yaml")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		t.Fatal(err)
	}

	logs, err := os.Create(filepath.Join(t.TempDir(), "pgveil.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(filepath.Join(root, "usr/bin/pgveil"), "serve", "--config", path)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-done
		}
	}()

	conn := connectWithin(t, "postgres://postgres@"+listen+"/postgres?sslmode=disable", 20*time.Second)
	var got string
	if err := conn.QueryRow(context.Background(), "SELECT 'plain proxy'").Scan(&got); err != nil || got != "plain proxy" {
		t.Fatalf("query through the packaged proxy: %q %v", got, err)
	}
	conn.Close(context.Background())
	cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, logs.Name(), "configuration reloaded", 10*time.Second)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v\n%s", err, readLog(logs.Name()))
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("still running 20s after SIGTERM:\n%s", readLog(logs.Name()))
	}
}

// uncomment turns the example's commented-out settings into YAML: lines
// like "#key: ..." and the indented lines that follow them. Prose comments
// start with "# ".
func uncomment(example []byte) []byte {
	var out []string
	inSetting := false
	for _, line := range strings.Split(string(example), "\n") {
		switch {
		case regexp.MustCompile(`^#[a-z_]+:`).MatchString(line):
			inSetting = true
			out = append(out, line[1:])
		case inSetting && strings.HasPrefix(line, "#  "):
			out = append(out, line[1:])
		default:
			inSetting = false
			out = append(out, line)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

// connectWithin connects, polling until the proxy listens or the deadline.
func connectWithin(t *testing.T, dsn string, d time.Duration) *pgx.Conn {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, dsn)
		cancel()
		if err == nil {
			return conn
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect to the packaged proxy: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls the log file until it holds s, or the deadline.
func waitFor(t *testing.T, log, s string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); !strings.Contains(readLog(log), s); {
		if time.Now().After(deadline) {
			t.Fatalf("the log lacks %q:\n%s", s, readLog(log))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func readLog(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
