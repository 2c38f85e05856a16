package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/pgveil/pgveil/internal/bouncer"
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
	// connect marks a connection-rate target, measured in connect mode
	// only (and the others in the query modes only).
	connect bool
	// only, when set, is the one mode the target is measured in.
	only string
}

// startTargets starts the relays and returns the targets in their base
// order, plus notes on targets that were skipped. To add a target, start
// its process here and append it. The connection-rate targets (connect
// mode) come last; see connect.go.
func startTargets(cfg config, up *upstream, dir string, undo *cleanups) ([]target, []string, error) {
	targets := []target{{name: "direct", addr: up.addr, user: up.user}}
	var skipped []string
	bouncerBin, err := bouncer.Find(cfg.pgbouncer)
	if err != nil {
		skipped = append(skipped, "pgbouncer: "+err.Error())
		slog.Warn("skipping pgbouncer", "reason", err)
	}
	var session *bouncer.Bouncer
	if bouncerBin != "" {
		if session, err = startPgbouncer(cfg, bouncerBin, bouncer.Session, dir, up.addr, max(cfg.clients, cfg.manyClients), up, undo); err != nil {
			return nil, nil, err
		}
		targets = append(targets, target{name: "pgbouncer", addr: session.Addr, user: up.user, pid: session.Pid})
	}
	p, addr, err := startPgveil(cfg, "pgveil", dir, up.addr, bouncer.Session, maskRules(cfg), up, undo)
	if err != nil {
		return nil, nil, err
	}
	targets = append(targets, target{name: "pgveil", addr: addr, user: up.user, pid: p.Pid})
	if cfg.maskedUser != "" {
		targets = append(targets, target{name: "pgveil-masked", addr: addr, user: cfg.maskedUser, pid: p.Pid})
	}
	if cfg.maskedUser != "" && slices.Contains(cfg.modes, rwMode) {
		f, err := fillerTarget(cfg, dir, up, undo)
		if err != nil {
			return nil, nil, err
		}
		targets = append(targets, f)
	}
	if !slices.Contains(cfg.modes, connectMode) {
		return targets, skipped, nil
	}
	conns, err := connectTargets(cfg, bouncerBin, session, targets, dir, up, undo)
	return append(targets, conns...), skipped, err
}

// startPgbouncer runs PgBouncer in the given pool mode in front of
// server (up, or a pgveil in front of it), for the bench's roles, with
// room for clients at once (and as many server connections: session mode
// holds one per client). Clients log in as PostgreSQL asks: the login
// role (connect mode) with SCRAM, every other with trust.
func startPgbouncer(cfg config, bin, mode, dir, server string, clients int, up *upstream, undo *cleanups) (*bouncer.Bouncer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	users := []bouncer.User{{Name: up.user, Password: os.Getenv("PGPASSWORD")}}
	if cfg.maskedUser != "" {
		users = append(users, bouncer.User{Name: cfg.maskedUser, Password: os.Getenv("PGPASSWORD")})
	}
	if up.login.name != up.user {
		users = append(users, bouncer.User{Name: up.login.name, Password: up.login.authFile()})
	}
	c := bouncer.Config{Bin: bin, Listen: addr, PoolMode: mode, Users: users,
		Databases: []bouncer.Database{{Name: "*", Addr: server}}, HBA: up.login.hba(),
		MaxClients: max(clients+50, 1000), PoolSize: max(clients, 200)}
	slog.Info("starting pgbouncer", "pool_mode", mode, "addr", addr)
	b, err := bouncer.Start(c, dir)
	if err != nil {
		return nil, err
	}
	undo.add(func() {
		if err := b.Stop(); err != nil {
			slog.Warn("stopping pgbouncer", "err", err)
		}
	})
	if err := pgtest.WaitReady(dsn(addr, up.user, up.db), nil, readyTimeout); err != nil {
		return nil, fmt.Errorf("pgbouncer on %s: %w\n--- pgbouncer.log (tail) ---\n%s", addr, err, b.Log())
	}
	return b, nil
}

// startPgveil runs the pgveil binary with a generated config (tables: its
// masking rules, see pgveilConfig), to which the --extra-config file is
// appended.
func startPgveil(cfg config, name, dir, upstreamAddr, poolMode, tables string, up *upstream, undo *cleanups) (*pgtest.Process, string, error) {
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
	conf, err := pgveilConfig(addr, upstreamAddr, poolMode, tables, up, cfg)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "--config", path)
	cmd.SysProcAttr = childAttr()
	p, err := startRelay(name, cmd, filepath.Join(dir, name+".log"), addr, up, undo)
	return p, addr, err
}

// pgveilConfig is the generated YAML: listen and upstream, the masking
// rules (tables, the entries under tables:) when a masked role is
// measured, then the extra file's content (which must not set those keys
// again). The catalog reads (admin_dsn) go straight to up; poolMode is
// the upstream's (transaction for a PgBouncer in that mode).
func pgveilConfig(listen, upstreamAddr, poolMode, tables string, up *upstream, cfg config) (string, error) {
	conf := fmt.Sprintf("listen: %s\nupstream: %s\nupstream_pool_mode: %s\n", listen, upstreamAddr, poolMode)
	if cfg.maskedUser != "" && cfg.extraConfig == "" {
		conf += fmt.Sprintf("admin_dsn: %s\nroles:\n  unmasked: [%s]\ntables:\n%s",
			dsn(up.addr, up.user, up.db), up.unmasked(), tables)
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

// maskRules are the masking rules of the pgveil targets: pgbench -S's
// result column, abalance, and the bulk table's email (bulk.go) when the
// bulk section runs.
func maskRules(cfg config) string {
	r := "  public.pgbench_accounts:\n    key: aid\n    columns:\n      abalance: {mask: redact}\n"
	if slices.Contains(cfg.modes, bulkSection) {
		r += "  " + bulkTable + ":\n    key: id\n    columns:\n      email: {mask: email}\n"
	}
	return r
}

// fillerRules mask a column pgbench's read-write script never reads
// (pgbench_accounts.filler) for the pgveil-filler target. The script
// computes abalance + :delta, which the policy refuses for a masked role
// when abalance is PII; through pgveil-filler the masked role runs the
// script, every statement analysed, with no masked column in its result.
const fillerRules = "  public.pgbench_accounts:\n    key: aid\n    columns:\n      filler: {mask: redact}\n"

// fillerTarget starts the pgveil of the pgveil-filler target, measured
// in rw mode only.
func fillerTarget(cfg config, dir string, up *upstream, undo *cleanups) (target, error) {
	p, addr, err := startPgveil(cfg, "pgveil-filler", dir, up.addr, bouncer.Session, fillerRules, up, undo)
	if err != nil {
		return target{}, err
	}
	return target{name: "pgveil-filler", addr: addr, user: cfg.maskedUser, pid: p.Pid, only: rwMode}, nil
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
// this program die without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
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
