package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/rules"
	"github.com/pgveil/pgveil/scan"
)

// scanUsage is pgveil scan --help.
const scanUsage = `Usage: pgveil scan [--dsn URL] [--database NAME] [--schema NAME,...] [--values N] [--timeout D] [--write FILE [--force]]

Finds the columns of a live database that look like personal data, by
their names (English and Norwegian/Scandinavian: email, e-post, telefon,
fornavn, fødselsnummer ...) and by validating a sample of their values
(email addresses, phone numbers, IBANs, card numbers with Luhn, IP
addresses, fødselsnummer with both check digits, dates of birth). It prints
one line per candidate column (table, column, type, kind, confidence,
evidence); it never prints a sampled value.

Cost is bounded: at most --values rows are read per table (TABLESAMPLE
SYSTEM on tables the planner expects to be large), each query under a
statement_timeout of --timeout, in a read-only session. A table that cannot
be sampled in time is judged by its column names, and said so on stderr.

--write FILE writes a starter rules file with a mask and an anonymize
strategy per column that fit its type and constraints; pgveil check accepts
it. An existing file is kept unless --force.

Connection: --dsn when given, else the libpq environment (PGHOST, PGPORT,
PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGSERVICE, ~/.pgpass);
--database NAME connects to NAME whatever they name. The summary names the
database scanned.

Exit status: 0 when the scan ran (whether or not it found anything), 1 when
the database cannot be read or the file cannot be written, 2 on a usage
error.

Flags:`

// scanFlags are the flags of pgveil scan.
type scanFlags struct {
	dsn, schemas, write, listen string
	force                       bool
	opts                        scan.Options
}

func runScan(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("scan", scanUsage, stderr)
	var f scanFlags
	fs.StringVar(&f.dsn, "dsn", "", "connection `URL` or keyword/value string (default: the libpq environment)")
	var dbf databaseFlags
	dbf.register(fs, false)
	fs.StringVar(&f.schemas, "schema", "", "comma-separated `schemas` to scan (default: all but the system schemas)")
	fs.IntVar(&f.opts.Values, "values", scan.DefaultValues, "most rows sampled per table (0: names only)")
	fs.DurationVar(&f.opts.Timeout, "timeout", scan.DefaultTimeout, "statement_timeout of each query")
	fs.StringVar(&f.write, "write", "", "write starter rules to `FILE`")
	fs.BoolVar(&f.force, "force", false, "overwrite the --write file when it exists")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:6432", "the listen address written to the --write file")
	var lf logFlags
	lf.register(fs)
	log, status, ok := parseLogged(fs, &lf, args, stderr)
	if !ok {
		return status
	}
	if msg := f.usageError(fs.Args()); msg != "" {
		fmt.Fprintln(stderr, "pgveil scan:", msg, "(see pgveil scan --help)")
		return 2
	}
	if f.write != "" && !f.force {
		if _, err := os.Stat(f.write); !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "pgveil scan: %s exists; use --force to overwrite it\n", f.write)
			return 1
		}
	}
	return withAdminConn("scan", &rules.Config{}, f.dsn, dbf.name, stderr, log, func(ctx context.Context, conn *pgx.Conn, target string) int {
		return f.run(ctx, conn, target, stdout, stderr)
	})
}

// usageError checks the flags that parsed; "" when they are fine.
func (f *scanFlags) usageError(rest []string) string {
	switch {
	case len(rest) > 0:
		return fmt.Sprintf("unexpected argument %q (flags only)", rest[0])
	case f.opts.Values < 0:
		return "--values must be 0 or more"
	case f.opts.Timeout <= 0:
		return "--timeout must be positive, like 10s"
	case f.force && f.write == "":
		return "--force needs --write"
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return fmt.Sprintf("--listen %q is not host:port", f.listen)
	}
	return ""
}

// run scans, prints the findings and writes the rules file.
func (f *scanFlags) run(ctx context.Context, conn *pgx.Conn, target string, stdout, stderr io.Writer) int {
	opts := f.opts
	if opts.Values == 0 {
		opts.Values = -1 // names only
	}
	if f.schemas != "" {
		opts.Schemas = strings.Split(f.schemas, ",")
	}
	prog := newProgress(stderr, "pgveil scan", 0, "tables")
	opts.Progress = func(done, total int) { prog.total = total; prog.update(done) }
	res, err := scan.Scan(ctx, conn, opts)
	prog.finish()
	if err != nil {
		fmt.Fprintf(stderr, "pgveil scan: reading %s: %v\n", target, err)
		return 1
	}
	for _, n := range res.Notes {
		fmt.Fprintln(stderr, "pgveil scan:", n)
	}
	printFindings(stdout, res.Findings)
	fmt.Fprintf(stdout, "\npgveil scan: %s in %d of %s (%s)\n", count(len(res.Findings), "candidate column"),
		tablesWith(res.Findings), count(len(res.Tables), "table"), target)
	if f.write == "" {
		return 0
	}
	data, err := scan.StarterRules(res.Findings, f.listen, upstreamOf(conn))
	if err == nil {
		err = writeNew(f.write, data, f.force)
	}
	if err != nil {
		fmt.Fprintln(stderr, "pgveil scan:", err)
		return 1
	}
	fmt.Fprintf(stdout, "pgveil scan: wrote %s; review it, then: pgveil check --config %s\n", f.write, f.write)
	return 0
}

// printFindings prints the findings as a table. It prints no value.
func printFindings(w io.Writer, findings []scan.Finding) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tCOLUMN\tTYPE\tKIND\tCONFIDENCE\tEVIDENCE")
	for _, f := range findings {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", f.Table.Name, f.Column.Name, f.Column.Type, f.Kind, f.Confidence, f.Evidence())
	}
	tw.Flush()
}

func tablesWith(findings []scan.Finding) int {
	seen := make(map[*scan.Table]bool)
	for _, f := range findings {
		seen[f.Table] = true
	}
	return len(seen)
}

// upstreamOf is the server conn reached, as host:port for the upstream
// key of a rules file.
func upstreamOf(conn *pgx.Conn) string {
	cc := conn.Config()
	if nc := conn.PgConn().Conn(); nc != nil {
		if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
			return a.String()
		}
	}
	host := cc.Host
	if strings.HasPrefix(host, "/") {
		host = "127.0.0.1" // a Unix socket: the proxy needs TCP
	}
	return net.JoinHostPort(host, strconv.Itoa(int(cc.Port)))
}

// writeNew writes data to a new file at path, or over an existing one
// when force is set.
func writeNew(path string, data []byte, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; use --force to overwrite it", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
