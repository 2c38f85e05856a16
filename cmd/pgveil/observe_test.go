package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// startServe runs the whole serve path with rulesYAML and metrics, logging
// at debug level in JSON to logs, until the test ends. It returns the
// proxy's and the metrics' addresses.
func startServe(t *testing.T, logs *syncBuffer) (listen, metrics string) {
	t.Helper()
	listen, metrics = freeAddr(t), freeAddr(t)
	path := filepath.Join(t.TempDir(), "pgveil.yaml")
	cfg := fmt.Sprintf("listen: %s\nupstream: %s\nmetrics_listen: %s\nadmin_dsn: %q\n%s",
		listen, db.Addr(), metrics, db.DSN("postgres", "", "postgres"), rulesYAML)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := (&logFlags{format: "json", level: "debug"}).logger(logs)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveUntil(ctx, path, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	waitLog(t, logs, `"msg":"pgveil listening"`)
	return listen, metrics
}

func connectTo(t *testing.T, addr, user string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(testCtx(t), "postgres://"+user+"@"+addr+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// scrape returns the value of each sample of the metrics endpoint, by its
// name and labels as exposed ("pgveil_x_total{column=\"a\"}").
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	samples := map[string]float64{}
	for _, line := range strings.Split(metricsText(t, addr), "\n") {
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			samples[line[:i]] = v
		}
	}
	return samples
}

// metricsText returns what the metrics endpoint serves.
func metricsText(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// TestMaskingMetricsAndLogs runs masked lookups, rejections and an
// ANONYMIZE through the proxy, then checks the masking metrics moved with
// the right labels, and that the debug log names the rejections with their
// literal-free text but holds no literal of any query.
func TestMaskingMetricsAndLogs(t *testing.T) {
	anonymizeFixture(t)
	var logs syncBuffer
	listen, metrics := startServe(t, &logs)
	ctx := testCtx(t)
	support := connectTo(t, listen, "support")
	simple := pgx.QueryExecModeSimpleProtocol
	const lookup = "SELECT id, email, first_name FROM customers WHERE email = 'kari.nordmann@example.com'"
	for range 2 {
		var id int64
		var email, name string
		if err := support.QueryRow(ctx, lookup, simple).Scan(&id, &email, &name); err != nil || email != "***@example.com" {
			t.Fatalf("lookup: %q %v", email, err)
		}
	}
	rejections := map[string]string{
		"SELECT id FROM customers WHERE email LIKE 'zq-secret-7731%'":  "oracle",
		"SELECT 'zq-secret-7732' || email::int8 FROM customers":        "error",
		"SELECT id FROM customers WHERE first_name = 'zq-secret-7733'": "oracle",
	}
	var pgErr *pgconn.PgError
	for sql := range rejections {
		if _, err := support.Exec(ctx, sql, simple); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Fatalf("%s: want 42501, got %v", sql, err)
		}
	}
	dpo := connectTo(t, listen, "dpo")
	tx, err := dpo.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tag, err := tx.Exec(ctx, "ANONYMIZE customers WHERE id = ANY($1)", []int64{51}); err != nil || tag.String() != "ANONYMIZE 1" {
		t.Fatalf("ANONYMIZE: %q %v", tag, err)
	}
	tx.Rollback(ctx)

	m := scrape(t, metrics)
	want := map[string]float64{
		`pgveil_masked_values_total{column="public.customers.email"}`:      2,
		`pgveil_masked_values_total{column="public.customers.first_name"}`: 2,
		`pgveil_rejected_queries_total{reason="oracle"}`:                   2,
		`pgveil_rejected_queries_total{reason="error"}`:                    1,
		`pgveil_anonymized_rows_total{table="public.customers"}`:           1,
	}
	for name, v := range want {
		if m[name] != v {
			t.Errorf("%s = %v, want %v", name, m[name], v)
		}
	}
	if m["pgveil_plan_cache_hits_total"] < 1 || m["pgveil_plan_cache_misses_total"] < 4 {
		t.Errorf("plan cache hits %v (want >= 1), misses %v (want >= 4)",
			m["pgveil_plan_cache_hits_total"], m["pgveil_plan_cache_misses_total"])
	}

	// Logs: every rejection, by its text without literals; no literal anywhere.
	support.Close(ctx)
	dpo.Close(ctx)
	text := logs.String()
	for _, want := range []string{`"query":"SELECT id FROM customers WHERE email LIKE $1"`, `"reason":"oracle"`, `"user":"support"`, `"query":"SELECT $1 || email::int8 FROM customers"`, `"reason":"error"`,
		`"query":"SELECT id FROM customers WHERE first_name = $1"`, `"construct":"WHERE","column":"customers.email"`} {
		if !strings.Contains(text, want) {
			t.Errorf("log lacks %s:\n%s", want, text)
		}
	}
	for _, secret := range append([]string{"zq-secret", "kari.nordmann"}, piiValues...) {
		if strings.Contains(text, secret) {
			t.Errorf("log holds the literal %q:\n%s", secret, text)
		}
	}
}

// TestLogFormatEveryCommand checks that every command takes the log
// flags and refuses a bad format, and that check logs JSON lines.
func TestLogFormatEveryCommand(t *testing.T) {
	for _, c := range commands() {
		var stderr syncBuffer
		code := dispatch([]string{c.name, "--log-format", "xml"}, io.Discard, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), `--log-format: "xml" is not text or json`) {
			t.Errorf("%s --log-format xml: exit %d, stderr %q; want 2 and the flag's error", c.name, code, stderr.String())
		}
	}
	path := writeCheckConfig(t, rulesYAML)
	var stderr syncBuffer
	code := dispatch([]string{"check", "--log-format", "json", "--log-level", "debug", "--config", path,
		"--dsn", db.DSN("postgres", "", "postgres")}, io.Discard, &stderr)
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if code != 0 || len(lines) == 0 || !regexp.MustCompile(`^\{"time":.*"level":"DEBUG","msg":"connected"`).MatchString(lines[0]) {
		t.Errorf("check --log-format json: exit %d, log %q", code, stderr.String())
	}
}
