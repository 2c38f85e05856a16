package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// demoSchema creates the demo's CRM, its data and its login roles.
//
//go:embed demo/schema.sql
var demoSchema string

// demoRules are the roles and tables of the demo's configuration.
//
//go:embed demo/rules.yaml
var demoRules string

// demoDatabase is the database schema.sql is loaded into.
const demoDatabase = "crm"

// demoHBA makes the demo's roles log in with a password (SCRAM, passed
// through the proxy); the superuser postgres stays trusted.
const demoHBA = "host all support,dba,dpo 127.0.0.1/32 scram-sha-256"

// The example queries the demo prints (its test runs them).
const (
	demoLookup    = "SELECT id, customer_number, email, first_name, phone, birth_date FROM customers WHERE email = 'kari.olsen@example.com';"
	demoNPS       = "SELECT segment_1 AS segment, count(*) AS answers, round(100.0 * (count(*) FILTER (WHERE nps >= 9) - count(*) FILTER (WHERE nps <= 6)) / count(*)) AS nps FROM survey_responses s JOIN customers c ON c.id = s.customer_id GROUP BY segment_1 ORDER BY nps DESC;"
	demoAnonymize = "ANONYMIZE customers WHERE id = 42;"
	demoAfter     = "SELECT id, email, first_name, anonymized_at, (SELECT count(*) FROM conversations v WHERE v.customer_id = c.id AND v.transcript LIKE 'This transcript has been removed%') AS transcripts_removed FROM customers c WHERE id = 42;"
)

// listenDeadline bounds how long the demo waits for the proxy to listen.
const listenDeadline = 30 * time.Second

const demoUsage = `Usage: pgveil demo [--listen host:port]

Tries pgveil on a sample CRM, with nothing to set up but PostgreSQL's server
binaries (Debian: apt-get install -y postgresql). It starts a throwaway
PostgreSQL cluster in a temporary directory, loads a CRM of made-up people
into database crm (customers, survey answers, and contact-centre
conversations partitioned by month), writes the rules for it, starts the
proxy, and prints a psql command for each of three roles (support: masked;
dba: unmasked; dpo: masked, may run ANONYMIZE) and queries to try. Ctrl-C
stops everything and removes the directory. The schema and the rules are
cmd/pgveil/demo/schema.sql and cmd/pgveil/demo/rules.yaml in the source.

Exit status: 0 after Ctrl-C, 1 on failure, 2 on a usage error.

Flags:`

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", demoUsage, stderr)
	listen := fs.String("listen", "127.0.0.1:6432", "where the demo proxy listens (port 0: a free port)")
	var lf logFlags
	lf.register(fs)
	log, status, ok := parseLogged(fs, &lf, args, stderr)
	if !ok {
		return status
	}
	if !flagsOnly(fs, stderr) {
		return 2
	}
	if _, _, err := net.SplitHostPort(*listen); err != nil {
		fmt.Fprintf(stderr, "pgveil demo: --listen: %q is not host:port\n", *listen)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := demo(ctx, *listen, stdout, log); err != nil && ctx.Err() == nil {
		fmt.Fprintln(stderr, "pgveil demo:", err)
		return 1
	}
	return 0
}

// demo starts a throwaway cluster with the sample CRM and the proxy in
// front of it, prints how to connect, and runs until ctx ends. It stops
// the cluster and removes its directory before it returns.
func demo(ctx context.Context, listen string, stdout io.Writer, log *slog.Logger) (err error) {
	listen, err = withFreePort(listen)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "Starting a throwaway PostgreSQL cluster...")
	db, err := pgtest.Start(pgtest.Options{HBA: []string{demoHBA}})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Stop()) }()
	summary, err := loadDemo(ctx, db)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, summary)
	cfgPath := filepath.Join(db.Dir, "pgveil.yaml")
	if err := os.WriteFile(cfgPath, []byte(demoConfig(listen, db)), 0o600); err != nil {
		return err
	}
	return serveDemo(ctx, cfgPath, listen, log, func() {
		printDemo(stdout, listen, cfgPath)
	})
}

// serveDemo runs the proxy until ctx ends, calling ready once it listens.
func serveDemo(parent context.Context, cfgPath, listen string, log *slog.Logger, ready func()) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	served := make(chan struct{})
	var serveErr error
	go func() {
		defer close(served)
		serveErr = serveUntil(ctx, cfgPath, log)
	}()
	if err := waitListening(ctx, listen, served); err != nil {
		cancel()
		<-served
		if parent.Err() != nil && serveErr == nil {
			return nil // stopped before it was ready
		}
		return errors.Join(err, serveErr)
	}
	ready()
	<-served
	return serveErr
}

// withFreePort replaces port 0 in addr with a free port, so the address
// can be printed before the proxy listens on it.
func withFreePort(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--listen: %q is not host:port", addr)
	}
	if port != "0" {
		return addr, nil
	}
	p, err := pgtest.FreePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// loadDemo creates the crm database and runs schema.sql in it. It returns
// a line saying what was loaded and where.
func loadDemo(ctx context.Context, db *pgtest.Cluster) (string, error) {
	if err := db.Exec(ctx, "CREATE DATABASE "+demoDatabase); err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, db.DSN("postgres", "", demoDatabase))
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", demoDatabase, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, demoSchema); err != nil {
		return "", fmt.Errorf("load demo/schema.sql: %w", err)
	}
	var version string
	var customers, answers, conversations, partitions int
	err = conn.QueryRow(ctx, `SELECT current_setting('server_version'),
	  (SELECT count(*) FROM customers), (SELECT count(*) FROM survey_responses),
	  (SELECT count(*) FROM conversations), (SELECT count(*) FROM pg_inherits WHERE inhparent = 'conversations'::regclass)`).
		Scan(&version, &customers, &answers, &conversations, &partitions)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("PostgreSQL %s is at %s (data in %s)\nDatabase %s: %d customers, %d survey answers, %d conversations in %d monthly partitions",
		version, db.Addr(), db.DataDir, demoDatabase, customers, answers, conversations, partitions), nil
}

// demoConfig is the demo's pgveil.yaml: where to listen and connect, then
// demo/rules.yaml.
func demoConfig(listen string, db *pgtest.Cluster) string {
	return fmt.Sprintf("listen: %s\nupstream: %s\nadmin_dsn: %q\n\n%s",
		listen, db.Addr(), db.DSN("postgres", "", demoDatabase), demoRules)
}

// waitListening polls until addr accepts TCP connections, the proxy stops
// (served is closed), ctx ends or listenDeadline passes.
func waitListening(ctx context.Context, addr string, served <-chan struct{}) error {
	deadline := time.Now().Add(listenDeadline)
	var d net.Dialer
	for {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgveil does not listen on %s after %s: %w", addr, listenDeadline, err)
		}
		select {
		case <-served:
			return fmt.Errorf("pgveil stopped before it listened on %s", addr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// demoRole is one of the login roles schema.sql creates.
type demoRole struct{ name, what string }

func demoRoles() []demoRole {
	return []demoRole{
		{"support", "masked"},
		{"dba", "unmasked"},
		{"dpo", "masked, may run ANONYMIZE"},
	}
}

// demoConnInfo is the libpq connection string of a demo role through the
// proxy at listen.
func demoConnInfo(listen, role string) string {
	host, port, _ := net.SplitHostPort(listen)
	return fmt.Sprintf("host=%s port=%s dbname=%s user=%s password=%s", host, port, demoDatabase, role, role)
}

// printDemo prints how to connect and what to try.
func printDemo(w io.Writer, listen, cfgPath string) {
	fmt.Fprintf(w, "pgveil listens on %s with %s\n\n", listen, cfgPath)
	fmt.Fprintln(w, "Connect through pgveil as one of three roles (the password is the role's name):")
	for _, r := range demoRoles() {
		label := fmt.Sprintf("%s (%s):", r.name, r.what)
		fmt.Fprintf(w, "  %-35s psql \"%s\"\n", label, demoConnInfo(listen, r.name))
	}
	fmt.Fprintf(w, "\nAs support, look a customer up by email (masked in results, but lookup: true):\n  %s\n", demoLookup)
	fmt.Fprintf(w, "and the NPS per customer segment:\n  %s\n", demoNPS)
	fmt.Fprintf(w, "As dpo, forget customer 42 with their survey answers and conversations:\n  %s\n", demoAnonymize)
	fmt.Fprintf(w, "then, as dba, see what is left:\n  %s\n", demoAfter)
	fmt.Fprintln(w, "\nCtrl-C stops everything and removes the temporary directory.")
}
