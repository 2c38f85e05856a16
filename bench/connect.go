package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/bouncer"
)

// connectMode is the connection-rate measurement: pgbench -S -C opens a
// new connection for every transaction, so its TPS is connections per
// second. It runs against its own targets: direct, PgBouncer (session
// mode), pgveil, and the two layouts of pgveil with PgBouncer in
// transaction mode: pgveil in front of PgBouncer, and PgBouncer in front
// of pgveil.
const connectMode = "connect"

// login is the role connect mode logs in as. On a throwaway upstream it is
// a role with a password that PostgreSQL and PgBouncer check with SCRAM,
// so that every connection pays for authentication, as in production;
// with --upstream it is --user, with PGPASSWORD.
type login struct {
	name, password string
	scram          bool // the throwaway role: SCRAM everywhere
	// secret is the role's SCRAM secret from pg_authid, which PgBouncer's
	// auth file holds instead of the password, as it should in
	// production: PgBouncer then checks a client without PBKDF2 and logs
	// into the server with the client's proof (SCRAM pass-through).
	secret string
}

// scramLogin is the connect mode role on a throwaway upstream.
var scramLogin = login{name: "pgveil_bench_login", password: "bench-only-password", scram: true}

// hba is the pg_hba.conf (and PgBouncer auth_hba_file) lines that ask
// the login role for SCRAM and trust every other local one, as the
// throwaway upstream does; none for --upstream, whose server decides.
func (l login) hba() []string {
	if !l.scram {
		return nil
	}
	return []string{"host all " + l.name + " 127.0.0.1/32 scram-sha-256", "host all all 127.0.0.1/32 trust"}
}

// auth describes how the login role authenticates, for the report.
func (l login) auth() string {
	if l.scram {
		return "SCRAM-SHA-256 at PostgreSQL and PgBouncer"
	}
	return "as the server asks"
}

// authFile is what PgBouncer's auth file holds for the role.
func (l login) authFile() string {
	if l.secret != "" {
		return l.secret
	}
	return l.password
}

// create makes the throwaway login role and reads its SCRAM secret; the
// --upstream role exists already.
func (l *login) create(ctx context.Context, conn *pgx.Conn) error {
	if !l.scram {
		return nil
	}
	if err := createReadRole(ctx, conn, l.name); err != nil {
		return err
	}
	// The password is a test value, never a real one: a literal is fine.
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{l.name}.Sanitize()+" PASSWORD '"+l.password+"'"); err != nil {
		return err
	}
	return conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", l.name).Scan(&l.secret)
}

// unmasked is the generated pgveil config's list of unmasked roles: the
// bench's owner, and the login role (connect mode measures pgveil
// unmasked, as pgbouncer and direct are).
func (up *upstream) unmasked() string {
	names := []string{up.user}
	if up.login.name != up.user {
		names = append(names, up.login.name)
	}
	return strings.Join(names, ", ")
}

// connectTargets starts the two layouts of pgveil with PgBouncer in
// transaction mode, and returns the connect mode's targets, logging in as
// the login role. base are the query modes' targets, whose relays it
// reuses; session is their PgBouncer, nil when there is none (then the
// PgBouncer targets are left out). CPU is charged to the front relay
// alone: the CPU column does not show the second relay's time.
func connectTargets(cfg config, bin string, session *bouncer.Bouncer, base []target, dir string, up *upstream, undo *cleanups) ([]target, error) {
	var out []target
	var pgveilAddr string
	for _, t := range base {
		if t.name == "direct" || t.name == "pgbouncer" || t.name == "pgveil" {
			t.user, t.connect = up.login.name, true
			out = append(out, t)
		}
		if t.name == "pgveil" {
			pgveilAddr = t.addr
		}
	}
	if session == nil {
		return out, nil
	}
	tx, err := startPgbouncer(cfg, bin, bouncer.Transaction, dir, up.addr, cfg.clients, up, undo)
	if err != nil {
		return nil, err
	}
	p, addr, err := startPgveil(cfg, "pgveil-pgbouncer", dir, tx.Addr, bouncer.Transaction, maskRules(cfg), up, undo)
	if err != nil {
		return nil, err
	}
	front, err := startPgbouncer(cfg, bin, bouncer.Transaction, dir, pgveilAddr, cfg.clients, up, undo)
	if err != nil {
		return nil, err
	}
	return append(out,
		target{name: "pgveil-pgbouncer", addr: addr, user: up.login.name, pid: p.Pid, connect: true},
		target{name: "pgbouncer-pgveil", addr: front.Addr, user: up.login.name, pid: front.Pid, connect: true}), nil
}

// targetsFor returns the targets measured in mode: the connect ones in
// connect mode, the others in the query modes (those with only set in
// that mode alone).
func targetsFor(mode string, targets []target) []target {
	return slices.DeleteFunc(slices.Clone(targets), func(t target) bool {
		return t.connect != (mode == connectMode) || t.only != "" && t.only != mode
	})
}

// loginEnv is the environment pgbench needs to log in as t's role.
func loginEnv(up *upstream, t target) []string {
	if t.user != up.login.name || up.login.password == "" {
		return nil
	}
	return []string{fmt.Sprintf("PGPASSWORD=%s", up.login.password)}
}
