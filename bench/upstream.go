package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/pgveil/pgveil/internal/pgtest"
)

// upstream is the PostgreSQL server every target ends up at.
type upstream struct {
	addr    string // host:port
	user    string // role pgbench logs in as (the "trusted" one)
	db      string
	pgbench string // path of the pgbench binary
	version string // server_version, filled by prepareData
	login   login  // the role connect mode logs in as
}

// setupUpstream starts a throwaway PostgreSQL, or uses --upstream.
func setupUpstream(ctx context.Context, cfg config, undo *cleanups) (*upstream, error) {
	if cfg.upstream != "" {
		binDir, _ := pgtest.FindBinDir() // only used to find pgbench
		return newUpstream(cfg.upstream, cfg.user, cfg.db, binDir)
	}
	slog.Info("starting throwaway PostgreSQL")
	c, err := pgtest.Start(pgtest.Options{HBA: scramLogin.hba()[:1],
		Settings: map[string]string{"max_connections": strconv.Itoa(maxConnections(cfg))}})
	if err != nil {
		return nil, err
	}
	undo.add(func() {
		if err := c.Stop(); err != nil {
			slog.Warn("stopping PostgreSQL", "err", err)
		}
	})
	up, err := newUpstream(c.Addr(), "postgres", cfg.db, c.BinDir)
	if err == nil {
		up.login = scramLogin
	}
	return up, err
}

// maxConnections is the throwaway server's max_connections. At the idle
// section's peak the server holds a backend per idle session (PgBouncer
// in session mode, or pgveil, which does not pool), beside the session
// PgBouncer's pool from the query modes (up to --many-clients server
// connections it keeps), the connect mode's pools and the catalog reads.
func maxConnections(cfg config) int {
	return max(cfg.idleSessions, cfg.manyClients, cfg.clients) + max(cfg.manyClients, cfg.clients) + 100
}

// newUpstream checks addr and finds pgbench, preferring the one beside the
// server binaries.
func newUpstream(addr, user, db, binDir string) (*upstream, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("upstream address %q: %w", addr, err)
	}
	path := filepath.Join(binDir, "pgbench")
	if _, err := os.Stat(path); binDir == "" || err != nil {
		path, err = exec.LookPath("pgbench")
		if err != nil {
			return nil, errors.New("pgbench not found; install it with: apt-get install -y postgresql-client")
		}
	}
	return &upstream{addr: addr, user: user, db: db, pgbench: path,
		login: login{name: user, password: os.Getenv("PGPASSWORD")}}, nil
}

// dsn is a postgres URL to addr as user; a password comes from PGPASSWORD.
func dsn(addr, user, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(user), Host: addr,
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// prepareData loads the pgbench tables, records the server version and
// creates the masked role if asked to.
func prepareData(ctx context.Context, cfg config, up *upstream) error {
	slog.Info("loading pgbench tables", "scale", cfg.scale, "upstream", up.addr)
	args := append(connArgs(up.addr, up.user), "-i", "-q", "-s", strconv.Itoa(cfg.scale), up.db)
	if out, err := runPgbenchCmd(ctx, up.pgbench, args); err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	conn, err := pgx.Connect(ctx, dsn(up.addr, up.user, up.db))
	if err != nil {
		return fmt.Errorf("connect to upstream: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&up.version); err != nil {
		return fmt.Errorf("server version: %w", err)
	}
	if err := up.login.create(ctx, conn); err != nil {
		return err
	}
	if cfg.maskedUser != "" {
		if err := createReadRole(ctx, conn, cfg.maskedUser); err != nil {
			return err
		}
		if err := grantWrites(ctx, conn, cfg.maskedUser); err != nil {
			return err
		}
	}
	if !slices.Contains(cfg.modes, bulkSection) {
		return nil
	}
	return loadBulk(ctx, cfg, conn)
}

// createReadRole makes a login role that may read the pgbench tables.
func createReadRole(ctx context.Context, conn *pgx.Conn, name string) error {
	role := pgx.Identifier{name}.Sanitize()
	var exists bool
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("look up role %s: %w", name, err)
	}
	stmt := "CREATE ROLE " + role + " LOGIN"
	if exists {
		stmt = "ALTER ROLE " + role + " LOGIN"
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("role %s: %w", name, err)
	}
	grant := "GRANT SELECT ON pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history TO " + role
	if _, err := conn.Exec(ctx, grant); err != nil {
		return fmt.Errorf("grant to %s: %w", name, err)
	}
	return nil
}

// grantWrites lets name run pgbench's read-write script (rw mode).
func grantWrites(ctx context.Context, conn *pgx.Conn, name string) error {
	grant := "GRANT UPDATE ON pgbench_accounts, pgbench_branches, pgbench_tellers TO " + pgx.Identifier{name}.Sanitize() +
		"; GRANT INSERT ON pgbench_history TO " + pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, grant); err != nil {
		return fmt.Errorf("grant writes to %s: %w", name, err)
	}
	return nil
}

// runPgbenchCmd runs pgbench with args and env added to ours, and returns
// its combined output.
func runPgbenchCmd(ctx context.Context, path string, args []string, env ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(append(os.Environ(), "PGSSLMODE=disable"), env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = childAttr()
	err := cmd.Run()
	return out.Bytes(), err
}

// connArgs are pgbench's connection options for addr and user.
func connArgs(addr, user string) []string {
	host, port, _ := net.SplitHostPort(addr)
	return []string{"-h", host, "-p", port, "-U", user}
}
