package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/anonymize"
	"github.com/pgveil/pgveil/masking"
	"github.com/pgveil/pgveil/rules"
)

// explainRejected is the exit status of pgveil explain for a query the
// proxy would reject.
const explainRejected = 3

const explainUsage = `Usage: pgveil explain --config FILE --role ROLE [--dsn URL] [--database NAME] [--format table|json] "SQL"

Shows what ROLE would get for SQL through the proxy, without running it:
for each statement, each result column (its position and the name the
server gives it) with its mask strategy and the PII columns it derives
from, or the rejection (SQLSTATE 42501) with its reason, construct and
column. A role in roles.unmasked is shown as unmasked. For ANONYMIZE, it
shows the tables the statement would change and how (EXPLAIN ANONYMIZE
through the proxy lists the rows).

It reads the live catalog as the proxy does, over its own connection:
--dsn when given, else admin_dsn, else the libpq environment with the
file's upstream as the host; --database NAME connects to NAME whatever
they name. The rules are that database's (its own under databases:, else
the top-level tables), and the output names it. Names resolve in that
connection's search_path, with "$user" read as ROLE.

Exit status: 0 when the query would run (masked or not), 1 on failure (the
database cannot be reached, the text does not parse), 2 on a usage error,
3 when the proxy would reject the query.

Flags:`

func runExplain(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("explain", explainUsage, stderr)
	config := fs.String("config", "pgveil.yaml", "configuration file")
	role := fs.String("role", "", "the login `role` to explain the query for (required)")
	dsn := fs.String("dsn", "", "connection `URL` or keyword/value string (default: admin_dsn, else the libpq environment)")
	format := fs.String("format", "table", "output format: table or json")
	var dbf databaseFlags
	dbf.register(fs, false)
	var lf logFlags
	lf.register(fs)
	log, status, ok := parseLogged(fs, &lf, args, stderr)
	if !ok {
		return status
	}
	switch {
	case *role == "":
		fmt.Fprintln(stderr, "pgveil explain: --role is required (see pgveil explain --help)")
		return 2
	case fs.NArg() != 1:
		fmt.Fprintln(stderr, "pgveil explain: give the query as one argument (see pgveil explain --help)")
		return 2
	case *format != "table" && *format != "json":
		fmt.Fprintf(stderr, "pgveil explain: --format: %q is not table or json\n", *format)
		return 2
	}
	cfg, err := rules.Load(*config)
	if err != nil {
		fmt.Fprintln(stderr, "pgveil explain:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ex, err := explain(ctx, cfg, *dsn, dbf.name, *role, fs.Arg(0), log)
	if err != nil {
		fmt.Fprintln(stderr, "pgveil explain:", err)
		return 1
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(ex)
	} else {
		ex.write(stdout)
	}
	if ex.Rejection != nil {
		return explainRejected
	}
	return 0
}

// explanation is what pgveil explain prints.
type explanation struct {
	Role string `json:"role"`
	// Database is the database whose catalog and rules were read.
	Database string `json:"database"`
	// Verdict is "masked", "unmasked" or "rejected".
	Verdict    string             `json:"verdict"`
	Why        string             `json:"why,omitempty"`
	Rejection  *explainRejection  `json:"rejection,omitempty"`
	Statements []explainStatement `json:"statements,omitempty"`
	// Runs is the text the server runs in place of the query, when pgveil
	// changes it to hide the order of PII values (masking/rewrite.go).
	Runs      string            `json:"runs,omitempty"`
	Anonymize *explainAnonymize `json:"anonymize,omitempty"`
}

type explainRejection struct {
	Reason    string `json:"reason"`
	Construct string `json:"construct,omitempty"`
	Column    string `json:"column,omitempty"`
	Message   string `json:"message"`
	Hint      string `json:"hint,omitempty"`
}

type explainStatement struct {
	Tag     string          `json:"tag"`
	Columns []explainColumn `json:"columns"`
	// Note says where the columns come from when the text does not tell.
	Note string `json:"note,omitempty"`
}

type explainColumn struct {
	Position int      `json:"position"` // 1-based; 0 stands for every column
	Name     string   `json:"name"`
	Mask     string   `json:"mask"` // "none", a strategy, or "redact (derived)"
	Sources  []string `json:"sources,omitempty"`
}

type explainAnonymize struct {
	Table   string           `json:"table"`
	Explain bool             `json:"explain,omitempty"`
	Tables  []anonymizeTable `json:"tables"`
}

type anonymizeTable struct {
	Table   string            `json:"table"`
	Action  string            `json:"action"` // anonymize or delete
	Columns map[string]string `json:"columns,omitempty"`
	Marker  string            `json:"anonymized_marker,omitempty"`
}

// explain analyses sql for role as the proxy would, against the live
// catalog. A rejection is part of the explanation; err is a failure.
func explain(ctx context.Context, cfg *rules.Config, dsn, database, role, sql string, log *slog.Logger) (*explanation, error) {
	conn, err := adminConnectDB(ctx, cfg, dsn, database)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if dsn != "" {
		cfg.AdminDSN = dsn // the guard's catalog reader connects the same way
	}
	g := masking.NewGuard(cfg, log)
	defer g.Close()
	exec := func(q string) ([][]string, error) { return textRows(ctx, conn, q) }
	database = connDatabase(conn)
	s, err := g.Open(role, database, nil, exec)
	if err != nil {
		return nil, err
	}
	p := policy{g: g, s: s, user: role, mayAnonymize: cfg.MayAnonymize(role)}
	defer p.Close()
	ex := &explanation{Role: role, Database: database, Verdict: "masked", Why: "not in roles.unmasked"}
	if s == nil {
		ex.Verdict, ex.Why = "unmasked", "in roles.unmasked: results pass untouched"
	}
	if anonymize.Is(sql) {
		return ex, ex.anonymize(p, cfg, sql, exec)
	}
	if s == nil {
		return ex, nil
	}
	a, err := s.Analyze(sql)
	if err != nil {
		return ex, ex.rejected(err)
	}
	for _, st := range a.Plan().Statements {
		ex.Statements = append(ex.Statements, statementOf(st))
	}
	ex.Runs = a.Text()
	return ex, nil
}

// rejected records err in the explanation when it is a rejection, and
// returns the other errors.
func (ex *explanation) rejected(err error) error {
	var rej *masking.Rejection
	if !errors.As(err, &rej) {
		return err
	}
	ex.Verdict, ex.Why = "rejected", "SQLSTATE "+masking.RejectCode
	ex.Rejection = &explainRejection{Reason: rej.Reason(), Construct: rej.Construct, Column: rej.Column,
		Message: rej.Error(), Hint: rej.Hint}
	return nil
}

// anonymize explains an ANONYMIZE statement: the check of its WHERE for a
// masked role, then the tables its plan changes.
func (ex *explanation) anonymize(p policy, cfg *rules.Config, sql string, exec func(string) ([][]string, error)) error {
	if err := p.forAnonymize(ex.Database, exec); err != nil {
		return err
	}
	if p.ownDB {
		defer p.db.Release()
	}
	plan, err := p.planAnonymize(sql, func(check string) error {
		_, err := p.s.Analyze(check)
		return err
	})
	if err != nil {
		return ex.rejected(err)
	}
	ex.Anonymize = &explainAnonymize{Table: plan.Table, Explain: plan.Explain}
	view := cfg.ForDatabase(ex.Database)
	for _, name := range plan.Tables {
		t := view.Tables[name]
		at := anonymizeTable{Table: name, Action: "anonymize", Marker: t.AnonymizedMarker}
		if t.OnAnonymize == "delete" {
			at = anonymizeTable{Table: name, Action: "delete"}
		} else {
			at.Columns = anonymizeColumns(t)
		}
		ex.Anonymize.Tables = append(ex.Anonymize.Tables, at)
	}
	return nil
}

// anonymizeColumns maps each column with an anonymize strategy to it.
func anonymizeColumns(t *rules.Table) map[string]string {
	cols := map[string]string{}
	for name, c := range t.Columns {
		if c.Anonymize.Kind != "" {
			cols[name] = c.Anonymize.String()
		}
	}
	return cols
}

// statementOf lists the result columns of one statement plan.
func statementOf(st masking.StatementPlan) explainStatement {
	es := explainStatement{Tag: st.Tag, Columns: []explainColumn{}}
	switch {
	case st.AllColumns != nil:
		c := columnOf(0, *st.AllColumns)
		c.Name = "(every column)"
		es.Columns = append(es.Columns, c)
	case st.Outputs == nil && st.Cursor != "":
		es.Note = "rows of cursor " + st.Cursor + ", masked as its DECLARE was"
	case st.Outputs == nil && st.Prepared != "":
		es.Note = "rows of prepared statement " + st.Prepared + ", masked as its PREPARE was"
	}
	for i, o := range st.Outputs {
		es.Columns = append(es.Columns, columnOf(i+1, o))
	}
	return es
}

func columnOf(pos int, o masking.Output) explainColumn {
	c := explainColumn{Position: pos, Name: o.Name, Mask: "none", Sources: o.Sources}
	switch {
	case o.Masked() && o.Plain:
		c.Mask = o.Strategy.String()
	case o.Masked():
		c.Mask = "redact (derived)"
	}
	if c.Name == "" {
		c.Name = "?column?"
	}
	return c
}

// write prints the explanation as readable tables.
func (ex *explanation) write(w io.Writer) {
	fmt.Fprintf(w, "role %s: %s (%s)\n", ex.Role, ex.Verdict, ex.Why)
	fmt.Fprintf(w, "database %s\n", ex.Database)
	if r := ex.Rejection; r != nil {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "  reason\t%s\n", r.Reason)
		for _, kv := range [][2]string{{"construct", r.Construct}, {"column", r.Column}, {"message", r.Message}, {"hint", r.Hint}} {
			if kv[1] != "" {
				fmt.Fprintf(tw, "  %s\t%s\n", kv[0], kv[1])
			}
		}
		tw.Flush()
	}
	for i, st := range ex.Statements {
		fmt.Fprintf(w, "statement %d: %s\n", i+1, st.Tag)
		st.write(w)
	}
	if ex.Runs != "" {
		fmt.Fprintf(w, "runs as: %s\n", ex.Runs)
	}
	if a := ex.Anonymize; a != nil {
		a.write(w)
	}
}

func (st explainStatement) write(w io.Writer) {
	if st.Note != "" {
		fmt.Fprintf(w, "  %s\n", st.Note)
	}
	if len(st.Columns) == 0 {
		if st.Note == "" {
			fmt.Fprintln(w, "  returns no rows")
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tcolumn\tmask\tderives from")
	for _, c := range st.Columns {
		pos, src := fmt.Sprint(c.Position), "-"
		if c.Position == 0 {
			pos = "*"
		}
		if len(c.Sources) > 0 {
			src = strings.Join(c.Sources, ", ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", pos, c.Name, c.Mask, src)
	}
	tw.Flush()
}

func (a *explainAnonymize) write(w io.Writer) {
	what := "ANONYMIZE"
	if a.Explain {
		what = "EXPLAIN ANONYMIZE (lists the rows that would change; changes nothing)"
	}
	fmt.Fprintf(w, "%s of %s changes:\n", what, a.Table)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  table\taction\tcolumns")
	for _, t := range a.Tables {
		var cols []string
		for name, s := range t.Columns {
			cols = append(cols, name+" = "+s)
		}
		slices.Sort(cols)
		if t.Marker != "" {
			cols = append(cols, t.Marker+" = now()")
		}
		if len(cols) == 0 {
			cols = []string{"-"}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Table, t.Action, strings.Join(cols, ", "))
	}
	tw.Flush()
}

// textRows runs a query on conn and returns its rows as text.
func textRows(ctx context.Context, conn *pgx.Conn, sql string) ([][]string, error) {
	res := conn.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return nil, res.Err
	}
	rows := make([][]string, len(res.Rows))
	for i, r := range res.Rows {
		for _, v := range r {
			rows[i] = append(rows[i], string(v))
		}
	}
	return rows, nil
}
