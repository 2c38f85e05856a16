package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/rules"
)

// defaultConnectTimeout bounds adminConnect when the connection string and
// the environment set no connect_timeout.
const defaultConnectTimeout = 30 * time.Second

// checkUsage is pgveil check --help.
const checkUsage = `Usage: pgveil check --config FILE [--dsn URL] [--database NAME | --all-databases]

Checks the rules against the live database and prints every problem, sorted
by key, then a summary: every declared table and column exists; each mask
and anonymize strategy fits its column's type, NOT NULL and unique
constraints, and varchar(n) limit; keys, parent links and foreign key
columns are never anonymized; the key is unique; the anonymized_marker is a
timestamp, timestamptz or boolean; parents and roles exist; each table with
an anonymized_marker has its pgveil guard trigger, enabled ALWAYS and up to
date with the rules (a warning otherwise, given when the rules have no
errors). It only reads pg_catalog.

Connection: --dsn when given, else admin_dsn from the file, else the libpq
environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE,
PGSERVICE, ~/.pgpass) with the file's upstream as the host (and port, unless
PGPORT is set) when PGHOST is unset. The pseudonym strategy needs
PGVEIL_PSEUDONYM_KEY, which is looked up in this command's environment: run
check where the proxy runs.

Database: --database NAME connects to NAME whatever the connection string
names, and checks NAME's rules (its own under databases:, else the
top-level tables). --all-databases checks every database named under
databases:, one after the other. The summary names the database.

Exit status: 0 when the rules fit the database (every one, with
--all-databases; warnings allowed), 1 when there are errors or a database
cannot be reached, 2 on a usage error.

Flags:`

func runCheck(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("check", checkUsage, stderr)
	config := fs.String("config", "pgveil.yaml", "configuration file")
	dsn := fs.String("dsn", "", "connection `URL` or keyword/value string (default: admin_dsn, else the libpq environment)")
	var dbf databaseFlags
	dbf.register(fs, true)
	var lf logFlags
	lf.register(fs)
	log, status, ok := parseLogged(fs, &lf, args, stderr)
	if !ok {
		return status
	}
	if !flagsOnly(fs, stderr) || !dbf.valid(fs, stderr) {
		return 2
	}
	cfg, code := loadForCheck(*config, stdout, stderr)
	if cfg == nil {
		return code
	}
	return dbf.each(fs.Name(), cfg, stderr, func(database string) int {
		return withAdminConn("check", cfg, *dsn, database, stderr, log, func(ctx context.Context, conn *pgx.Conn, target string) int {
			return checkAndReport(ctx, cfg.ForDatabase(connDatabase(conn)), conn, target, *config, stdout, stderr)
		})
	})
}

// withAdminConn connects with adminConnectDB, runs fn until it returns or
// SIGINT or SIGTERM cancels its context, and closes the connection. A
// connection failure is printed, prefixed with the command's name, and
// gives exit status 1.
func withAdminConn(command string, cfg *rules.Config, dsn, database string, stderr io.Writer, log *slog.Logger,
	fn func(ctx context.Context, conn *pgx.Conn, target string) int) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := adminConnectDB(ctx, cfg, dsn, database)
	if err != nil {
		fmt.Fprintf(stderr, "pgveil %s: %v\n", command, err)
		return 1
	}
	defer conn.Close(context.Background())
	target := connectedTo(conn)
	log.Debug("connected", "target", target)
	return fn(ctx, conn, target)
}

// checkAndReport runs rules.Check and prints its problems and a summary.
func checkAndReport(ctx context.Context, cfg *rules.Config, conn *pgx.Conn, target, config string, stdout, stderr io.Writer) int {
	problems, err := rules.Check(ctx, cfg, conn)
	if err == nil && !hasErrors(problems) { // pgveil guard needs rules without errors
		var guards []rules.Problem
		guards, err = rules.CheckGuards(ctx, cfg, conn)
		problems = mergeProblems(problems, guards)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pgveil check: reading the catalog of %s: %v\n", target, err)
		return 1
	}
	errs, warnings := 0, 0
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
		if p.Warning {
			warnings++
		} else {
			errs++
		}
	}
	if errs > 0 {
		fmt.Fprintf(stdout, "pgveil check: %s, %s in %s (%s)\n", count(errs, "error"), count(warnings, "warning"), config, target)
		return 1
	}
	if warnings > 0 {
		fmt.Fprintf(stdout, "pgveil check: the rules fit %s (%s, %s)\n", target, config, count(warnings, "warning"))
		return 0
	}
	fmt.Fprintf(stdout, "pgveil check: the rules fit %s (%s)\n", target, config)
	return 0
}

func hasErrors(problems []rules.Problem) bool {
	for _, p := range problems {
		if !p.Warning {
			return true
		}
	}
	return false
}

// mergeProblems merges two lists sorted by key into one.
func mergeProblems(a, b []rules.Problem) []rules.Problem {
	out := append(a[:len(a):len(a)], b...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// loadForCheck reads and statically validates the configuration. When it
// is invalid, every problem is printed with the file name, and cfg is nil.
func loadForCheck(path string, stdout, stderr io.Writer) (cfg *rules.Config, code int) {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(stderr, "pgveil check:", err)
		return nil, 1
	}
	cfg, err = rules.Parse(data)
	if err != nil {
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			fmt.Fprintf(stdout, "%s: %v\n", path, e)
		}
		fmt.Fprintf(stdout, "pgveil check: %s in %s; the database was not checked\n", count(len(errs), "error"), path)
		return nil, 1
	}
	cfg.Path = path
	return cfg, 0
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// adminConnect opens pgveil's own connection to the database, for the
// commands that work on the database themselves (check, anonymize, scan,
// guard). The connection string is dsn when given, else the configuration's
// admin_dsn. With neither, pgx reads the standard libpq environment (PGHOST,
// PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, PGSERVICE, ~/.pgpass,
// ...) and, when PGHOST and PGSERVICE are unset, connects to the
// configuration's upstream host, and its port unless PGPORT is set. Without
// a connect_timeout (or PGCONNECT_TIMEOUT) it gives up after 30 seconds.
//
// An error says which database, server and user it tried, and where the
// settings came from. It never contains the password.
func adminConnect(ctx context.Context, cfg *rules.Config, dsn string) (*pgx.Conn, error) {
	return adminConnectDB(ctx, cfg, dsn, "")
}

// adminConnectDB is adminConnect to the named database, whatever the
// connection string names ("" keeps the one it names).
func adminConnectDB(ctx context.Context, cfg *rules.Config, dsn, database string) (*pgx.Conn, error) {
	connString, source := adminConnString(cfg, dsn)
	cc, err := pgx.ParseConfig(connString)
	if err != nil {
		// pgconn's ParseConfigError shows the string with the password
		// replaced by xxxxx.
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if database != "" {
		cc.Database = database
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = defaultConnectTimeout
	}
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		detail := err
		var ce *pgconn.ConnectError
		if errors.As(err, &ce) && ce.Unwrap() != nil {
			detail = ce.Unwrap() // leave out pgconn's "failed to connect to `user=... database=...`"
		}
		return nil, &connectError{
			msg: fmt.Sprintf("cannot connect to database %s at %s as user %s (%s): %v",
				databaseName(cc.Database, cc.User), serverAddr(cc.Host, cc.Port), cc.User, source, detail),
			err: err,
		}
	}
	return conn, nil
}

// adminConnString picks the connection string adminConnect parses, and
// says where it came from.
func adminConnString(cfg *rules.Config, dsn string) (connString, source string) {
	switch {
	case dsn != "":
		return dsn, "from --dsn"
	case cfg.AdminDSN != "":
		return cfg.AdminDSN, "from admin_dsn in " + configName(cfg)
	}
	var set []string
	for _, v := range []string{"PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "PGSSLMODE", "PGSERVICE", "PGPASSFILE"} {
		if os.Getenv(v) != "" {
			set = append(set, v)
		}
	}
	source = "from the libpq environment"
	if len(set) > 0 {
		source += " (" + strings.Join(set, ", ") + ")"
	}
	if os.Getenv("PGHOST") != "" || os.Getenv("PGSERVICE") != "" {
		return "", source
	}
	host, port, err := net.SplitHostPort(cfg.Upstream)
	if err != nil || host == "" {
		return "", source
	}
	connString = "host=" + quoteConnValue(host)
	if os.Getenv("PGPORT") == "" {
		connString += " port=" + quoteConnValue(port)
	}
	return connString, source + " with upstream " + cfg.Upstream + " as the server"
}

func configName(cfg *rules.Config) string {
	if cfg.Path == "" {
		return "the configuration"
	}
	return cfg.Path
}

// quoteConnValue quotes a value for a keyword/value connection string.
func quoteConnValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// databaseName is the database a connection asks for: the user's name when
// none is set, as PostgreSQL does.
func databaseName(database, user string) string {
	if database == "" {
		return user
	}
	return database
}

// serverAddr formats a host and port as pgconn dials them.
func serverAddr(host string, port uint16) string {
	if strings.HasPrefix(host, "/") {
		return host + "/.s.PGSQL." + strconv.Itoa(int(port))
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

// connectedTo describes an open connection: "database postgres at
// 127.0.0.1:5432", with the address it actually reached.
func connectedTo(conn *pgx.Conn) string {
	cc := conn.Config()
	addr := serverAddr(cc.Host, cc.Port)
	if nc := conn.PgConn().Conn(); nc != nil && nc.RemoteAddr() != nil {
		addr = nc.RemoteAddr().String()
	}
	return fmt.Sprintf("database %s at %s", databaseName(cc.Database, cc.User), addr)
}

// connectError is a connection failure with a message that names what was
// tried; it unwraps to pgconn's error.
type connectError struct {
	msg string
	err error
}

func (e *connectError) Error() string { return e.msg }
func (e *connectError) Unwrap() error { return e.err }
