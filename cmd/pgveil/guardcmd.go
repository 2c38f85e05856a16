package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/rules"
)

// guardUsage is pgveil guard --help.
const guardUsage = `Usage: pgveil guard --config FILE [--dsn URL] [--database NAME | --all-databases] [--drop]

Installs, on each table of the rules that declares an anonymized_marker, a
trigger that keeps anonymized rows anonymized, whoever writes: through
pgveil or straight to the database. An UPDATE of a row whose marker is set
that changes a column with an anonymize strategy, or clears the marker,
fails with SQLSTATE 42501 naming the table and the key. Columns that are
only masked, and rows not anonymized, may change as before; ANONYMIZE
itself is not hindered (it updates rows whose marker is NULL).

Each table gets a BEFORE UPDATE row trigger guard_<schema>_<table> running
the function pgveil.guard_<schema>_<table>, enabled ALWAYS, so that it also
fires in replication apply (session_replication_role = replica). Running
guard again replaces every guard it installed before, in one transaction:
guards of tables that no longer declare a marker are removed. The rules
must pass pgveil check first. --drop removes every guard trigger and
function. pgveil check warns when a guard is missing, disabled, not ALWAYS,
or out of date with the rules.

Connection: --dsn when given, else admin_dsn from the file, else the libpq
environment with the file's upstream as the host. The role must own the
tables (or be a superuser) and may need CREATE on the database for the
schema pgveil. --database NAME connects to NAME whatever the connection
string names, and guards the tables of NAME's rules (its own under
databases:, else the top-level ones); --all-databases does so in every
database named under databases:, each in its own transaction. The
summary names the database.

Exit status: 0 when the guards are installed (or dropped), 1 on failure
(nothing changed), 2 on a usage error.

Flags:`

func runGuard(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("guard", guardUsage, stderr)
	config := fs.String("config", "pgveil.yaml", "configuration file")
	dsn := fs.String("dsn", "", "connection `URL` or keyword/value string (default: admin_dsn, else the libpq environment)")
	drop := fs.Bool("drop", false, "remove every guard trigger and function instead")
	var dbf databaseFlags
	dbf.register(fs, true)
	var lf logFlags
	lf.register(fs)
	if _, status, ok := parseLogged(fs, &lf, args, stderr); !ok {
		return status
	}
	if !flagsOnly(fs, stderr) || !dbf.valid(fs, stderr) {
		return 2
	}
	cfg, err := rules.Load(*config)
	if err != nil {
		fmt.Fprintln(stderr, "pgveil guard:", err)
		return 1
	}
	return dbf.each(fs.Name(), cfg, stderr, func(database string) int {
		return guardDatabase(cfg, *dsn, database, *drop, stdout, stderr)
	})
}

// guardDatabase installs (or drops) the guards of one database.
func guardDatabase(cfg *rules.Config, dsn, database string, drop bool, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := adminConnectDB(ctx, cfg, dsn, database)
	if err != nil {
		fmt.Fprintln(stderr, "pgveil guard:", err)
		return 1
	}
	defer conn.Close(context.Background())
	if drop {
		err = dropGuards(ctx, conn, stdout)
	} else {
		err = installGuards(ctx, cfg.ForDatabase(connDatabase(conn)), conn, stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "pgveil guard:", err)
		return 1
	}
	return 0
}

// installGuards checks the rules, then replaces every guard in one
// transaction.
func installGuards(ctx context.Context, cfg *rules.Config, conn *pgx.Conn, stdout io.Writer) error {
	problems, err := rules.Check(ctx, cfg, conn)
	if err != nil {
		return err
	}
	errs := 0
	for _, p := range problems {
		if !p.Warning {
			fmt.Fprintln(stdout, p)
			errs++
		}
	}
	if errs > 0 {
		return fmt.Errorf("%s in %s for %s (see pgveil check); no guard changed", count(errs, "error"), cfg.Path, connectedTo(conn))
	}
	guards := rules.Guards(cfg)
	_, err = inGuardTx(ctx, conn, func(tx pgx.Tx) error {
		if len(guards) > 0 {
			if _, err := tx.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+rules.GuardSchema); err != nil {
				return fmt.Errorf("creating the schema %s: %w", rules.GuardSchema, err)
			}
		}
		for _, g := range guards {
			if _, err := tx.Exec(ctx, g.InstallSQL()); err != nil {
				return fmt.Errorf("installing the guard of %s: %w", g.Table, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, g := range guards {
		fmt.Fprintf(stdout, "guarded %s: %s\n", g.Table, g.Describe())
	}
	fmt.Fprintf(stdout, "pgveil guard: %s guarded in %s\n", count(len(guards), "table"), connectedTo(conn))
	return nil
}

// dropGuards removes every guard trigger and function in one transaction.
func dropGuards(ctx context.Context, conn *pgx.Conn, stdout io.Writer) error {
	dropped, err := inGuardTx(ctx, conn, func(pgx.Tx) error { return nil })
	if err != nil {
		return err
	}
	for _, g := range dropped {
		fmt.Fprintf(stdout, "dropped the guard of %s\n", g.Table)
	}
	fmt.Fprintf(stdout, "pgveil guard: %s dropped in %s\n", count(len(dropped), "guard"), connectedTo(conn))
	return nil
}

// inGuardTx runs fn in a transaction that first drops every installed
// guard, serialized with other runs of pgveil guard. It returns the guards
// it dropped.
func inGuardTx(ctx context.Context, conn *pgx.Conn, fn func(pgx.Tx) error) (old []rules.InstalledGuard, err error) {
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('pgveil guard'))"); err != nil {
			return err
		}
		var err error
		if old, err = rules.InstalledGuards(ctx, tx); err != nil {
			return err
		}
		for _, g := range old {
			if _, err := tx.Exec(ctx, g.Drop()); err != nil {
				return fmt.Errorf("dropping the guard of %s: %w", g.Table, err)
			}
		}
		return fn(tx)
	})
	return old, err
}
