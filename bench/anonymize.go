package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/anonymize"
	"github.com/pgveil/pgveil/rules"
)

// The ANONYMIZE benchmark: anonymizing anonRows customers with three
// survey responses each, through pgveil's plan (what ANONYMIZE and pgveil
// anonymize run) and through hand-written UPDATE statements doing the same
// work, audit record included, each in one transaction.

const anonSchemaSQL = `
DROP SCHEMA IF EXISTS anonbench CASCADE;
CREATE SCHEMA anonbench;
CREATE TABLE anonbench.customers (id int8 PRIMARY KEY, email text UNIQUE, first_name text, phone text,
  country text, anonymized_at timestamptz);
CREATE TABLE anonbench.survey_responses (id int8 PRIMARY KEY,
  customer_id int8 REFERENCES anonbench.customers, nps int, comment text);
CREATE INDEX ON anonbench.survey_responses (customer_id);
INSERT INTO anonbench.customers SELECT i, 'person' || i || '@example.com', 'Name' || i, '+47' || (90000000 + i), 'NO', NULL
  FROM generate_series(1, $1) i;
INSERT INTO anonbench.survey_responses SELECT i * 3 + j, i, j * 3, 'Comment ' || j || ' of person ' || i
  FROM generate_series(1, $1) i, generate_series(0, 2) j`

const anonRulesYAML = `listen: 127.0.0.1:1
upstream: 127.0.0.1:1
roles: {anonymize: [postgres]}
tables:
  anonbench.customers:
    key: id
    anonymized_marker: anonymized_at
    columns:
      email:      {mask: email, anonymize: random_email}
      first_name: {mask: redact, anonymize: redact}
      phone:      {mask: "partial:2,2", anonymize: blank}
  anonbench.survey_responses:
    key: id
    parent: {table: anonbench.customers, via: customer_id}
    columns:
      comment: {mask: redact, anonymize: "text:This comment has been anonymised based on customer request"}
`

// handWritten is the same work as pgveil's plan, written by hand.
var handWritten = []string{
	`UPDATE anonbench.customers SET email = 'anon-' || gen_random_uuid() || '@anonymized.invalid',
	   first_name = '***', phone = '', anonymized_at = now() WHERE id = ANY($1) AND anonymized_at IS NULL`,
	`UPDATE anonbench.survey_responses SET comment = 'This comment has been anonymised based on customer request'
	   WHERE customer_id = ANY($1)`,
	`INSERT INTO pgveil.anonymize_log (logged_at, login_role, table_name, anonymized, deleted, statement)
	   SELECT now(), session_user, 'anonbench.customers',
	     jsonb_build_object('anonbench.customers', to_jsonb($1::int8[]),
	       'anonbench.survey_responses', (SELECT jsonb_agg(id) FROM anonbench.survey_responses WHERE customer_id = ANY($1))),
	     '{}', 'hand-written'`,
}

// anonResult is the median time of each way, in seconds.
type anonResult struct {
	Rows        int     `json:"rows"`
	PgveilSec   float64 `json:"pgveil_seconds"`
	HandSec     float64 `json:"hand_written_seconds"`
	Ratio       float64 `json:"ratio"`
	ChildRows   int     `json:"child_rows"`
	Rounds      int     `json:"rounds"`
	PlanSQLSize int     `json:"plan_sql_bytes"`
}

// benchAnonymize measures both ways over cfg.rounds rounds, alternating.
func benchAnonymize(ctx context.Context, cfg config, up *upstream) (*anonResult, error) {
	conn, err := pgx.Connect(ctx, dsn(up.addr, up.user, up.db))
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	if err := anonymize.EnsureAuditLog(ctx, conn, nil); err != nil {
		return nil, err
	}
	plan, err := anonPlan()
	if err != nil {
		return nil, err
	}
	keys := make([]int64, cfg.anonRows)
	for i := range keys {
		keys[i] = int64(i + 1)
	}
	var pg, hand []float64
	for round := 0; round < cfg.rounds; round++ {
		for _, viaPlan := range []bool{round%2 == 0, round%2 != 0} {
			secs, err := anonRound(ctx, conn, cfg.anonRows, keys, plan, viaPlan)
			if err != nil {
				return nil, err
			}
			if viaPlan {
				pg = append(pg, secs)
			} else {
				hand = append(hand, secs)
			}
		}
	}
	res := &anonResult{Rows: cfg.anonRows, ChildRows: 3 * cfg.anonRows, Rounds: cfg.rounds,
		PgveilSec: median(pg), HandSec: median(hand), PlanSQLSize: len(plan.SQL)}
	res.Ratio = res.PgveilSec / res.HandSec
	return res, nil
}

// anonPlan is pgveil's plan for "ANONYMIZE anonbench.customers WHERE id = ANY($1)".
func anonPlan() (*anonymize.Plan, error) {
	rc, err := rules.Parse([]byte(anonRulesYAML))
	if err != nil {
		return nil, err
	}
	st, err := anonymize.Parse("ANONYMIZE anonbench.customers WHERE id = ANY($1)")
	if err != nil {
		return nil, err
	}
	return st.Plan(rc, []string{"anonbench"}, 1)
}

// anonRound loads fresh data and times one way of anonymizing all of it.
func anonRound(ctx context.Context, conn *pgx.Conn, rows int, keys []int64, plan *anonymize.Plan, viaPlan bool) (float64, error) {
	if _, err := conn.Exec(ctx, inline(anonSchemaSQL, rows)); err != nil {
		return 0, fmt.Errorf("load anonymize data: %w", err)
	}
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE anonbench.customers, anonbench.survey_responses"); err != nil {
		return 0, err
	}
	start := time.Now()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	if viaPlan {
		args := []any{keys}
		for _, p := range plan.Params {
			args = append(args, p)
		}
		var n int64
		if err := tx.QueryRow(ctx, plan.SQL, args...).Scan(&n); err != nil || n != int64(rows) {
			return 0, fmt.Errorf("pgveil's plan anonymized %d of %d rows: %v", n, rows, err)
		}
	} else {
		for _, sql := range handWritten {
			if _, err := tx.Exec(ctx, sql, keys); err != nil {
				return 0, fmt.Errorf("hand-written: %w", err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	secs := time.Since(start).Seconds()
	slog.Info("anonymize round", "via", map[bool]string{true: "pgveil plan", false: "hand-written"}[viaPlan], "seconds", secs)
	return secs, nil
}

// inline puts the row count into the data script, a multi-statement text
// that cannot take parameters.
func inline(sql string, rows int) string {
	out := []byte{}
	for i := 0; i < len(sql); i++ {
		if sql[i] == '$' && i+1 < len(sql) && sql[i+1] == '1' {
			out = fmt.Appendf(out, "%d", rows)
			i++
			continue
		}
		out = append(out, sql[i])
	}
	return string(out)
}

// print writes the ANONYMIZE benchmark's line of the report.
func (r *anonResult) print(w io.Writer) {
	fmt.Fprintf(w, "\nANONYMIZE of %d customers with %d child rows (median of %d rounds, one transaction each):\n",
		r.Rows, r.ChildRows, r.Rounds)
	fmt.Fprintf(w, "  pgveil plan %.2f s, hand-written UPDATEs %.2f s: %.2fx (target at most 1.5x)\n",
		r.PgveilSec, r.HandSec, r.Ratio)
}
