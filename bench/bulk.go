package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The bulk section: one client reads a whole table of --bulk-rows rows
// (about 215 bytes a row on the wire) through each query-mode target. The
// client is pgconn draining rows over the extended protocol without
// decoding a value, so its own cost is small and the same for every
// target; the connection is opened before the clock starts. The masked
// role sees email masked (maskRules).

// bulkTable is the table the bulk section reads.
const bulkTable = "public.bench_bulk"

// bulkQuery is the read: every row, every column.
const bulkQuery = "SELECT id, email, name, note FROM " + bulkTable

// bulkSchemaSQL makes the table; $1 is the row count.
const bulkSchemaSQL = `DROP TABLE IF EXISTS ` + bulkTable + `;
CREATE TABLE ` + bulkTable + ` (id int8 PRIMARY KEY, email text NOT NULL, name text NOT NULL, note text NOT NULL);
INSERT INTO ` + bulkTable + ` SELECT i, 'person' || i || '@example.com', 'Name ' || i, left(repeat(md5(i::text), 5), 150)
  FROM generate_series(1, $1) i`

// checkedRows is how many leading rows of each read have their email
// checked: raw through the unmasked targets, masked through the masked.
const checkedRows = 1000

// bulkRow is the median of one target's reads.
type bulkRow struct {
	Target   string    `json:"target"`
	Rows     int64     `json:"rows"`
	Bytes    int64     `json:"datarow_bytes"` // DataRow messages, headers included
	Seconds  float64   `json:"seconds"`
	MBps     float64   `json:"mb_per_second"`
	VsDirect *float64  `json:"vs_direct"` // seconds over direct's
	Runs     []float64 `json:"runs_seconds"`
}

// loadBulk creates the bulk table, lets the masked role read it, and sets
// its hint bits (VACUUM) so that no read writes.
func loadBulk(ctx context.Context, cfg config, conn *pgx.Conn) error {
	slog.Info("loading the bulk table", "rows", cfg.bulkRows)
	if _, err := conn.Exec(ctx, inline(bulkSchemaSQL, cfg.bulkRows)); err != nil {
		return fmt.Errorf("load %s: %w", bulkTable, err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE "+bulkTable); err != nil {
		return err
	}
	if cfg.maskedUser == "" {
		return nil
	}
	_, err := conn.Exec(ctx, "GRANT SELECT ON "+bulkTable+" TO "+pgx.Identifier{cfg.maskedUser}.Sanitize())
	return err
}

// bulkReadsPerRound is how many times a round reads the table through
// each target: a read takes well under a second, and single reads on a
// shared 2-core machine vary by half, so the median is taken over more of
// them than the other sections' rounds.
const bulkReadsPerRound = 3

// benchBulk reads the table through every target bulkReadsPerRound times
// per round, the order alternating, after one unmeasured read that warms
// the caches.
func benchBulk(ctx context.Context, cfg config, up *upstream, targets []target) ([]bulkRow, error) {
	targets = targetsFor(bulkSection, targets)
	if _, err := readBulk(ctx, cfg, up, targets[0]); err != nil {
		return nil, fmt.Errorf("bulk warm-up: %w", err)
	}
	rows := make([]bulkRow, len(targets))
	for i, t := range targets {
		rows[i].Target = t.name
	}
	for round := 1; round <= cfg.rounds*bulkReadsPerRound; round++ {
		for _, t := range roundOrder(targets, round) {
			r, err := readBulk(ctx, cfg, up, t)
			if err != nil {
				return nil, fmt.Errorf("bulk read, round %d, %s: %w", round, t.name, err)
			}
			slog.Info("bulk read", "round", round, "target", t.name, "seconds", r.Seconds)
			i := indexOf(targets, t.name)
			rows[i].Rows, rows[i].Bytes = r.Rows, r.Bytes
			rows[i].Runs = append(rows[i].Runs, r.Seconds)
		}
	}
	return bulkRatios(rows), nil
}

// indexOf is the position of the target named name.
func indexOf(targets []target, name string) int {
	for i, t := range targets {
		if t.name == name {
			return i
		}
	}
	return -1
}

// bulkRatios fills each row's medians and its ratio to direct's (the
// first row, when it is direct).
func bulkRatios(rows []bulkRow) []bulkRow {
	for i := range rows {
		rows[i].Seconds = median(rows[i].Runs)
		if rows[i].Seconds > 0 {
			rows[i].MBps = float64(rows[i].Bytes) / 1e6 / rows[i].Seconds
		}
	}
	if len(rows) == 0 || rows[0].Target != "direct" {
		return rows
	}
	for i := range rows {
		rows[i].VsDirect = ratio(rows[i].Seconds, rows[0].Seconds)
	}
	return rows
}

// readBulk times one whole read through t, checking the leading rows'
// emails; Runs is left empty.
func readBulk(ctx context.Context, cfg config, up *upstream, t target) (bulkRow, error) {
	conn, err := pgconn.Connect(ctx, dsn(t.addr, t.user, up.db))
	if err != nil {
		return bulkRow{}, err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	masked := t.user == cfg.maskedUser
	r := bulkRow{Target: t.name}
	start := time.Now()
	rr := conn.ExecParams(ctx, bulkQuery, nil, nil, nil, nil)
	for rr.NextRow() {
		vals := rr.Values()
		r.Rows++
		r.Bytes += 7 + 4*int64(len(vals))
		for _, v := range vals {
			r.Bytes += int64(len(v))
		}
		if r.Rows <= checkedRows && len(vals) == 4 && isRawEmail(vals[0], vals[1]) == masked {
			return r, fmt.Errorf("row %s: email %q is %s", vals[0], vals[1], map[bool]string{true: "raw for the masked role", false: "not the raw one"}[masked])
		}
	}
	if _, err := rr.Close(); err != nil {
		return r, err
	}
	r.Seconds = time.Since(start).Seconds()
	if r.Rows != int64(cfg.bulkRows) {
		return r, fmt.Errorf("read %d rows, want %d", r.Rows, cfg.bulkRows)
	}
	return r, nil
}

// isRawEmail reports whether email is the loaded value of row id.
func isRawEmail(id, email []byte) bool {
	return bytes.Equal(email, []byte("person"+string(id)+"@example.com"))
}

// printBulk writes the bulk section's table.
func printBulk(w io.Writer, rows []bulkRow, rounds int) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nbulk read: %s (%d rows, %.0f MB of DataRow messages) by one client draining the rows (pgconn, extended protocol);\n"+
		"  the masked role sees email masked; median of %d reads, %d in each of %d rounds (target: at most 1.05x direct)\n\n",
		bulkQuery, rows[0].Rows, float64(rows[0].Bytes)/1e6, rounds*bulkReadsPerRound, bulkReadsPerRound, rounds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "bulk\ttarget\tseconds\tMB/s\tvs direct")
	for _, r := range rows {
		fmt.Fprintf(tw, "bulk\t%s\t%.3f\t%.0f\t%s\n", r.Target, r.Seconds, r.MBps, orDash(r.VsDirect, "%.2fx"))
	}
	_ = tw.Flush()
}

// rowsLabel is n with thousands separators, for titles.
func rowsLabel(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
