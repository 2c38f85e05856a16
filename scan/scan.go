package scan

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultValues is how many rows Scan samples per table by default.
const DefaultValues = 200

// DefaultTimeout is the default statement_timeout of Scan's queries.
const DefaultTimeout = 10 * time.Second

// Options tunes Scan. The zero value is usable.
type Options struct {
	// Schemas limits the scan to these schemas; empty means every schema
	// but pg_catalog, information_schema, pg_* and pgveil.
	Schemas []string
	// Values is the most rows sampled per table, so the most values
	// validated per column; 0 means DefaultValues, and a negative number
	// samples nothing (name evidence only).
	Values int
	// Timeout is the statement_timeout of each query (waiting for a lock
	// included);
	// 0 means DefaultTimeout. A table whose sample times out is reported
	// in Result.Notes and judged by its column names.
	Timeout time.Duration
	// Progress, when set, is called after each table with the number of
	// tables done and the total.
	Progress func(done, total int)
	// Today is the date dates of birth are judged against; zero means now.
	Today time.Time
}

// Result is what Scan found.
type Result struct {
	Tables   []*Table  // every table scanned, with its columns
	Findings []Finding // the candidate columns, in table and column order
	Notes    []string  // tables that could not be sampled, and why
}

// Scan finds the columns of the database conn is connected to that look
// like personal data. It reads the catalog, then samples each table once
// (at most opts.Values rows, TABLESAMPLE SYSTEM when the planner expects
// many more rows than that) and validates the text, date and inet columns'
// values as they arrive. It keeps no value: a Finding holds counts only.
//
// The session is made read-only and given opts.Timeout as its
// statement_timeout; these settings stay on conn.
func Scan(ctx context.Context, conn *pgx.Conn, opts Options) (*Result, error) {
	opts = opts.withDefaults()
	if err := prepareSession(ctx, conn, opts.Timeout); err != nil {
		return nil, err
	}
	tables, err := readCatalog(ctx, conn, opts.Schemas)
	if err != nil {
		return nil, err
	}
	res := &Result{Tables: tables}
	for i, t := range tables {
		counts, err := sampleTable(ctx, conn, t, opts)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			res.Notes = append(res.Notes, fmt.Sprintf("%s: not sampled (%s); judged by column names only", t.Name, describeErr(err, opts.Timeout)))
		}
		for _, c := range t.Columns {
			if f, ok := judge(t, c, counts[c.Name]); ok {
				res.Findings = append(res.Findings, f)
			}
		}
		if opts.Progress != nil {
			opts.Progress(i+1, len(tables))
		}
	}
	return res, nil
}

func (o Options) withDefaults() Options {
	if o.Values == 0 {
		o.Values = DefaultValues
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Today.IsZero() {
		o.Today = time.Now()
	}
	return o
}

// prepareSession makes the session read-only, with ISO dates and the
// timeouts.
func prepareSession(ctx context.Context, conn *pgx.Conn, timeout time.Duration) error {
	ms := strconv.FormatInt(timeout.Milliseconds(), 10)
	_, err := conn.Exec(ctx, `SELECT set_config('default_transaction_read_only', 'on', false),
       set_config('DateStyle', 'ISO, YMD', false),
       set_config('statement_timeout', $1, false)`, ms)
	if err != nil {
		return fmt.Errorf("setting up the session: %w", err)
	}
	return nil
}

func describeErr(err error, timeout time.Duration) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Code == "57014" {
			return "statement_timeout of " + timeout.String() + " reached"
		}
		return pe.Message + " (SQLSTATE " + pe.Code + ")"
	}
	return err.Error()
}

// valueCounts are the counts of one column's sample.
type valueCounts struct {
	nonNull int
	valid   map[Kind]int
}

// maxSampledChars bounds how much of a value is fetched: every kind scan
// validates is shorter, so a longer value is no candidate anyway.
const maxSampledChars = 300

// sampleTable samples the columns of t worth sampling, and counts per
// column the non-NULL values and those that validate as each kind.
func sampleTable(ctx context.Context, conn *pgx.Conn, t *Table, opts Options) (map[string]*valueCounts, error) {
	var cols []*Column
	for _, c := range t.Columns {
		if sampled(c.Class) {
			cols = append(cols, c)
		}
	}
	if len(cols) == 0 || opts.Values < 0 {
		return nil, nil
	}
	rows, err := conn.Query(ctx, sampleSQL(t, cols, opts.Values), pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := make(map[string]*valueCounts, len(cols))
	for _, c := range cols {
		counts[c.Name] = &valueCounts{valid: make(map[Kind]int)}
	}
	for rows.Next() {
		for i, raw := range rows.RawValues() {
			if raw != nil {
				counts[cols[i].Name].add(string(raw), cols[i].Class, opts.Today)
			}
		}
	}
	return counts, rows.Err()
}

// sampleSQL selects up to n rows of the columns, each cut to
// maxSampledChars. On a table the planner expects to hold more than 50
// times n rows it reads a TABLESAMPLE SYSTEM of about ten times n rows'
// worth of pages (SYSTEM picks whole pages, so the number of rows it
// returns varies; the margin keeps it above n nearly always).
func sampleSQL(t *Table, cols []*Column, n int) string {
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = fmt.Sprintf("left(%s::text, %d)", pgx.Identifier{c.Name}.Sanitize(), maxSampledChars)
	}
	from := pgx.Identifier{t.Schema, t.Rel}.Sanitize()
	if t.Rows > float64(50*n) {
		pct := 100 * 10 * float64(n) / t.Rows
		from += " TABLESAMPLE SYSTEM (" + strconv.FormatFloat(pct, 'f', 6, 64) + ")"
	}
	return fmt.Sprintf("SELECT %s FROM %s LIMIT %d", strings.Join(exprs, ", "), from, n)
}

// add validates one value.
func (vc *valueCounts) add(v string, class TypeClass, today time.Time) {
	vc.nonNull++
	for _, val := range validators {
		if class == DateType && val.kind != BirthDate {
			continue
		}
		if val.valid(v, today) {
			vc.valid[val.kind]++
		}
	}
}

// best is the kind most values validate as, and how many do.
func (vc *valueCounts) best() (Kind, int) {
	var kind Kind
	n := 0
	for _, val := range validators {
		if c := vc.valid[val.kind]; c > n {
			kind, n = val.kind, c
		}
	}
	return kind, n
}
