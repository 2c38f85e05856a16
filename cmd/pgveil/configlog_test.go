package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// configLogDB holds the config_log of the test, apart from other tests.
const configLogDB = "configlog_cli"

const configLogRules = `
audit_config: true
tables:
  public.customers:
    key: id
    columns:
      email:      {mask: email, anonymize: random_email}
      first_name: {mask: redact}
`

// configLogRows reads the records of pgveil.config_log, oldest first.
func configLogRows(t *testing.T, conn *pgx.Conn) [][]string {
	t.Helper()
	rows, err := conn.Query(testCtx(t), `SELECT host, file, sha256, event, changes::text FROM pgveil.config_log ORDER BY id`)
	if err != nil {
		if strings.Contains(err.Error(), "42P01") {
			return nil // not created yet
		}
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]string, error) {
		v := make([]string, 5)
		return v, r.Scan(&v[0], &v[1], &v[2], &v[3], &v[4])
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitConfigLog polls until the log has n records.
func waitConfigLog(t *testing.T, conn *pgx.Conn, n int) [][]string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows := configLogRows(t, conn)
		if len(rows) >= n {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("pgveil.config_log has %d records, want %d", len(rows), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func fileHash(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestRuleChangesAreLoggedAndAudited(t *testing.T) {
	ctx := testCtx(t)
	setupOnce(t, configLogDB, "CREATE DATABASE "+configLogDB)
	conn := connectDB(t, "postgres", configLogDB)
	if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS pgveil CASCADE"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pgveil.yaml")
	head := "listen: " + freeAddr(t) + "\nupstream: " + db.Addr() + "\nadmin_dsn: " + db.DSN("postgres", "", configLogDB) + "\n"
	if err := os.WriteFile(path, []byte(head+configLogRules), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveUntil(sctx, path, slog.New(slog.NewJSONHandler(&logs, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()

	host, _ := os.Hostname()
	rows := waitConfigLog(t, conn, 1)
	start := []string{host, path, fileHash(t, path), "start", `[{"op": "added", "new": "key: id, on_anonymize: anonymize", "kind": "table", "table": "public.customers"}, ` +
		`{"op": "added", "new": "mask: email, anonymize: random_email", "kind": "column", "table": "public.customers", "column": "email"}, ` +
		`{"op": "added", "new": "mask: redact", "kind": "column", "table": "public.customers", "column": "first_name"}]`}
	if strings.Join(rows[0], "\n") != strings.Join(start, "\n") {
		t.Errorf("start record:\n%q\nwant\n%q", rows[0], start)
	}
	waitLog(t, &logs, `"msg":"pgveil listening"`)

	changed := strings.Replace(configLogRules, "first_name: {mask: redact}", "first_name: {mask: nullify}\n      phone: {mask: redact}", 1)
	if err := os.WriteFile(path, []byte(head+changed), 0o600); err != nil {
		t.Fatal(err)
	}
	srvReload(t)
	rows = waitConfigLog(t, conn, 2)
	reload := []string{host, path, fileHash(t, path), "reload",
		`[{"op": "changed", "new": "nullify", "old": "redact", "kind": "column", "field": "mask", "table": "public.customers", "column": "first_name"}, ` +
			`{"op": "added", "new": "mask: redact", "kind": "column", "table": "public.customers", "column": "phone"}]`}
	if len(rows) != 2 || strings.Join(rows[1], "\n") != strings.Join(reload, "\n") {
		t.Errorf("records after the reload:\n%q\nwant a second\n%q", rows, reload)
	}
	checkChangeLogs(t, logs.String(), path, fileHash(t, path))
}

// checkChangeLogs checks the JSON log records of the reload.
func checkChangeLogs(t *testing.T, out, path, sha string) {
	t.Helper()
	var got []map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if m := rec["msg"]; m == "rules reload" || m == "rules changed" {
			delete(rec, "time")
			got = append(got, rec)
		}
	}
	want := []map[string]any{
		{"level": "INFO", "msg": "rules reload", "path": path, "sha256": sha, "changes": float64(2)},
		{"level": "INFO", "msg": "rules changed", "op": "changed", "kind": "column", "table": "public.customers", "column": "first_name", "field": "mask", "old": "redact", "new": "nullify"},
		{"level": "INFO", "msg": "rules changed", "op": "added", "kind": "column", "table": "public.customers", "column": "phone", "new": "mask: redact"},
	}
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	if string(wj) != string(gj) {
		t.Errorf("log records:\n%s\nwant\n%s", gj, wj)
	}
}
