package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// readyTimeout bounds how long a relay may take to accept connections.
const readyTimeout = 30 * time.Second

// stopTimeout bounds how long a relay may take to exit after SIGTERM.
const stopTimeout = 10 * time.Second

// target is one way for pgbench to reach PostgreSQL.
type target struct {
	name string
	addr string     // host:port pgbench connects to
	user string     // role pgbench logs in as
	pid  func() int // relay process charged with CPU time; nil if none
}

// startTargets starts the relays and returns the targets in their base
// order, plus notes on targets that were skipped. To add a target, start
// its process here and append it.
func startTargets(cfg config, up *upstream, dir string, undo *cleanups) ([]target, []string, error) {
	targets := []target{{name: "direct", addr: up.addr, user: up.user}}
	var skipped []string
	bouncer, err := findPgbouncer(cfg.pgbouncer)
	if err != nil {
		skipped = append(skipped, "pgbouncer: "+err.Error())
		slog.Warn("skipping pgbouncer", "reason", err)
	} else {
		users := []string{up.user, cfg.maskedUser}
		p, addr, err := startPgbouncer(bouncer, dir, up, users, undo)
		if err != nil {
			return nil, nil, err
		}
		targets = append(targets, target{name: "pgbouncer", addr: addr, user: up.user, pid: p.Pid})
	}
	p, addr, err := startPgveil(cfg, dir, up, undo)
	if err != nil {
		return nil, nil, err
	}
	targets = append(targets, target{name: "pgveil", addr: addr, user: up.user, pid: p.Pid})
	if cfg.maskedUser != "" {
		targets = append(targets, target{name: "pgveil-masked", addr: addr, user: cfg.maskedUser, pid: p.Pid})
	}
	return targets, skipped, nil
}

// findPgbouncer returns the pgbouncer binary to use.
func findPgbouncer(flagPath string) (string, error) {
	if flagPath != "" {
		return flagPath, nil
	}
	if path, err := exec.LookPath("pgbouncer"); err == nil {
		return path, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", fmt.Errorf("not found on PATH or in /usr/sbin; install it with: apt-get install -y pgbouncer")
}

// startPgbouncer runs pgbouncer in session mode in front of up. It runs as
// the postgres OS user when we are root, since pgbouncer refuses root.
func startPgbouncer(bin, dir string, up *upstream, users []string, undo *cleanups) (*pgtest.Process, string, error) {
	cred, err := pgtest.ServerCredential()
	if err != nil {
		return nil, "", err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	ini := filepath.Join(dir, "pgbouncer.ini")
	if err := writeOwned(filepath.Join(dir, "userlist.txt"), userlist(users), cred); err != nil {
		return nil, "", err
	}
	if err := writeOwned(ini, pgbouncerIni(dir, addr, up.addr), cred); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, ini)
	cmd.SysProcAttr = childAttr(cred)
	p, err := startRelay("pgbouncer", cmd, filepath.Join(dir, "pgbouncer.log"), addr, up, undo)
	return p, addr, err
}

// pgbouncerIni is a session-mode config that trusts clients (the throwaway
// upstream trusts them too) and sends every database to the upstream.
func pgbouncerIni(dir, listen, upstreamAddr string) string {
	lhost, lport, _ := net.SplitHostPort(listen)
	uhost, uport, _ := net.SplitHostPort(upstreamAddr)
	db := fmt.Sprintf("host=%s port=%s", uhost, uport)
	if pw := os.Getenv("PGPASSWORD"); pw != "" {
		db += " password='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(pw) + "'"
	}
	return strings.Join([]string{
		"[databases]",
		"* = " + db,
		"[pgbouncer]",
		"listen_addr = " + lhost,
		"listen_port = " + lport,
		"unix_socket_dir =",
		"auth_type = trust",
		"auth_file = " + filepath.Join(dir, "userlist.txt"),
		"pool_mode = session",
		"max_client_conn = 1000",
		"default_pool_size = 200",
		"ignore_startup_parameters = extra_float_digits",
	}, "\n") + "\n"
}

// userlist is pgbouncer's auth file: trust still wants the names listed.
func userlist(users []string) string {
	var b strings.Builder
	for _, u := range users {
		if u != "" {
			fmt.Fprintf(&b, "%s %s\n", userlistQuote(u), userlistQuote(os.Getenv("PGPASSWORD")))
		}
	}
	return b.String()
}

// userlistQuote double-quotes s the way pgbouncer's auth file wants.
func userlistQuote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// startPgveil runs the pgveil binary with a generated config, to which the
// --extra-config file is appended.
func startPgveil(cfg config, dir string, up *upstream, undo *cleanups) (*pgtest.Process, string, error) {
	bin, err := filepath.Abs(cfg.pgveil)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		return nil, "", fmt.Errorf("pgveil binary: %w (build it with: go build -o bin/pgveil ./cmd/pgveil)", err)
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	conf, err := pgveilConfig(addr, up, cfg)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "pgveil.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "--config", path)
	cmd.SysProcAttr = childAttr(nil)
	p, err := startRelay("pgveil", cmd, filepath.Join(dir, "pgveil.log"), addr, up, undo)
	return p, addr, err
}

// pgveilConfig is the generated YAML: listen and upstream, the masking
// rules when a masked role is measured (pgbench -S's result column,
// abalance, is masked), then the extra file's content (which must not set
// those keys again).
func pgveilConfig(listen string, up *upstream, cfg config) (string, error) {
	conf := fmt.Sprintf("listen: %s\nupstream: %s\n", listen, up.addr)
	if cfg.maskedUser != "" && cfg.extraConfig == "" {
		conf += fmt.Sprintf("admin_dsn: %s\nroles:\n  unmasked: [%s]\ntables:\n  public.pgbench_accounts:\n"+
			"    key: aid\n    columns:\n      abalance: {mask: redact}\n", dsn(up.addr, up.user, up.db), up.user)
	}
	if cfg.extraConfig == "" {
		return conf, nil
	}
	extra, err := os.ReadFile(cfg.extraConfig)
	if err != nil {
		return "", fmt.Errorf("--extra-config: %w", err)
	}
	return conf + string(extra) + "\n", nil
}

// startRelay starts cmd with its output in logPath, registers its shutdown
// and waits until a query through addr succeeds.
func startRelay(name string, cmd *exec.Cmd, logPath, addr string, up *upstream, undo *cleanups) (*pgtest.Process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logf.Close() }()
	cmd.Stdout, cmd.Stderr = logf, logf
	p, err := pgtest.StartProcess(cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	undo.add(func() {
		if err := p.Stop(syscall.SIGTERM, stopTimeout); err != nil {
			slog.Warn("stopping "+name, "err", err)
		}
	})
	slog.Info("waiting for "+name, "addr", addr, "pid", p.Pid())
	if err := pgtest.WaitReady(dsn(addr, up.user, up.db), p, readyTimeout); err != nil {
		return nil, fmt.Errorf("%s on %s: %w\n--- %s (tail) ---\n%s", name, addr, err, logPath, pgtest.Tail(logPath, 4096))
	}
	return p, nil
}

// childAttr puts a child in its own process group, so Ctrl-C reaches only
// this program (which then stops the child), and has it terminated should
// this program die without cleaning up. cred, if set, is the user to run as.
func childAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM, Credential: cred}
}

// writeOwned writes a private file owned by cred's user (or by us).
func writeOwned(path, content string, cred *syscall.Credential) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return pgtest.Chown(path, cred)
}

// freeAddr returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddr() (string, error) {
	port, err := pgtest.FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// workDir makes the bench's temporary directory, readable by the postgres
// OS user when we are root (pgbouncer runs as that user).
func workDir(undo *cleanups) (string, error) {
	dir, err := os.MkdirTemp("", "pgveil-bench-")
	if err != nil {
		return "", err
	}
	undo.add(func() { _ = os.RemoveAll(dir) })
	cred, err := pgtest.ServerCredential()
	if err != nil {
		return "", err
	}
	return dir, pgtest.Chown(dir, cred)
}
