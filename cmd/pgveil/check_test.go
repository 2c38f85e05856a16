package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rules"
)

// writeCheckConfig writes a configuration with upstream the test cluster.
func writeCheckConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgveil.yaml")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\n%s", db.Addr(), body)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCheckCommand(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCommand(t, append([]string{"check"}, args...)...)
}

func TestCheckGoodRules(t *testing.T) {
	path := writeCheckConfig(t, rulesYAML)
	code, stdout, stderr := runCheckCommand(t, "--config", path, "--dsn", db.DSN("postgres", "", "postgres"))
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	want := path + ": tables.public.customers.anonymized_marker: warning: no guard trigger guard_public_customers: any writer can give an anonymized row its personal data back; run pgveil guard --config " + path + "\n" +
		"pgveil check: the rules fit database postgres at " + db.Addr() + " (" + path + ", 1 warning)\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if stderr != "" {
		t.Errorf("stderr: %q", stderr)
	}
}

func TestCheckBadRules(t *testing.T) {
	path := writeCheckConfig(t, `
roles:
  unmasked: [postgres, app_admin]
  anonymize: [dpo]
tables:
  public.customers:
    key: id
    anonymized_marker: country
    columns:
      emial:      {mask: email}
      email:      {mask: email, anonymize: "text:gone"}
      birth_date: {mask: "partial:1,1"}
  public.survey_responses:
    key: id
    parent: {table: public.customers, via: customer_id}
    columns:
      customer_id: {mask: redact, anonymize: nullify}
  public.customer_emails:
    columns:
      email: {mask: email}
  public.orders:
    key: id
    parent: {table: public.customers, via: customer_id}
    on_anonymize: delete
    columns:
      amount: {mask: redact}
`)
	code, stdout, _ := runCheckCommand(t, "--config", path, "--dsn", db.DSN("postgres", "", "postgres"))
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := []string{
		"tables.public.customer_emails: public.customer_emails is a view; views may not be declared",
		"tables.public.customers.anonymized_marker: country is text; the marker must be timestamp, timestamptz (set to now()) or boolean (set to true)",
		"tables.public.customers.columns.birth_date.mask: partial:1,1 does not fit birth_date date (fits: generalize:year|month, redact, nullify)",
		"tables.public.customers.columns.email.anonymize: text:gone writes the same value 'gone' to every anonymized row, but email is in unique constraint customers_email_key",
		"tables.public.customers.columns.emial: no such column in public.customers",
		"tables.public.orders.parent.via: warning: no foreign key from public.orders.customer_id to public.customers.id",
		"tables.public.survey_responses.columns.customer_id.anonymize: customer_id is parent.via, the link to public.customers (foreign key survey_responses_customer_id_fkey",
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != len(want)+1 {
		t.Fatalf("got %d lines, want %d problems and a summary", len(lines), len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], path+": "+w) {
			t.Errorf("line %d:\n got %s\nwant %s: %s…", i+1, lines[i], path, w)
		}
	}
	summary := fmt.Sprintf("pgveil check: 6 errors, 1 warning in %s (database postgres at %s)", path, db.Addr())
	if lines[len(lines)-1] != summary {
		t.Errorf("summary:\n got %s\nwant %s", lines[len(lines)-1], summary)
	}
}

func TestCheckInvalidFile(t *testing.T) {
	path := writeCheckConfig(t, "tables:\n  customers:\n    columns:\n      email: {mask: email, anonymize: \"partial:1,1\"}\n")
	code, stdout, _ := runCheckCommand(t, "--config", path, "--dsn", db.DSN("postgres", "", "postgres"))
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	for _, w := range []string{
		path + ": tables.customers: table names are schema-qualified",
		path + ": tables.customers.columns.email.anonymize: partial:1,1 derives",
		"pgveil check: 2 errors in " + path + "; the database was not checked",
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout does not say %q", w)
		}
	}
	code, _, stderr := runCheckCommand(t, "--config", filepath.Join(t.TempDir(), "none.yaml"))
	if code != 1 || !strings.Contains(stderr, "none.yaml") {
		t.Errorf("missing file: exit %d, stderr %q", code, stderr)
	}
}

func TestCheckCannotConnect(t *testing.T) {
	path := writeCheckConfig(t, rulesYAML)
	const secret = "s3cret-pw"
	closed := freeAddr(t)
	cases := []struct{ dsn, want string }{
		{"postgres://postgres:" + secret + "@" + closed + "/postgres?sslmode=disable",
			"pgveil check: cannot connect to database postgres at " + closed + " as user postgres (from --dsn): " + closed},
		{db.DSN("postgres", secret, "nodb"),
			"pgveil check: cannot connect to database nodb at " + db.Addr() + " as user postgres (from --dsn): " + db.Addr()},
		{"postgres://postgres:" + secret + "@127.0.0.1:notaport/postgres",
			"pgveil check: from --dsn: cannot parse `postgres://postgres:xxxxx@127.0.0.1:notaport/postgres`: invalid port"},
	}
	for _, tc := range cases {
		code, stdout, stderr := runCheckCommand(t, "--config", path, "--dsn", tc.dsn)
		if code != 1 {
			t.Errorf("%s: exit %d, want 1", tc.dsn, code)
		}
		if !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("%s: stderr\n%s\nwant it to start with\n%s", tc.dsn, stderr, tc.want)
		}
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("%s: the password is in the output:\n%s%s", tc.dsn, stdout, stderr)
		}
	}
}

// TestAdminConnectEnvironment: without --dsn and admin_dsn, the libpq
// environment applies, with upstream as the default server.
func TestAdminConnectEnvironment(t *testing.T) {
	for _, v := range []string{"PGSERVICE", "PGPASSWORD", "PGHOST", "PGPORT"} {
		t.Setenv(v, "")
	}
	t.Setenv("PGUSER", "postgres")
	t.Setenv("PGDATABASE", "postgres")
	t.Setenv("PGSSLMODE", "disable")
	port := strconv.Itoa(db.Port)
	cases := []struct {
		name, upstream, adminDSN string
		env                      map[string]string
	}{
		{"upstream as the server", db.Addr(), "", nil},
		{"PGPORT wins over the upstream port", "127.0.0.1:1", "", map[string]string{"PGPORT": port}},
		{"PGHOST replaces the upstream", "192.0.2.1:1", "", map[string]string{"PGHOST": "127.0.0.1", "PGPORT": port}},
		{"admin_dsn", "192.0.2.1:1", db.DSN("postgres", "", "postgres"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg := &rules.Config{Upstream: tc.upstream, AdminDSN: tc.adminDSN}
			conn, err := adminConnect(testCtx(t), cfg, "")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(testCtx(t))
			if got, want := connectedTo(conn), "database postgres at "+db.Addr(); got != want {
				t.Errorf("connected to %s, want %s", got, want)
			}
		})
	}
	_, err := adminConnect(testCtx(t), &rules.Config{Upstream: "127.0.0.1:1", Path: "pgveil.yaml"}, "")
	want := "cannot connect to database postgres at 127.0.0.1:1 as user postgres (from the libpq environment (PGUSER, PGDATABASE, PGSSLMODE) with upstream 127.0.0.1:1 as the server)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v, want %s…", err, want)
	}
}

func TestCheckUsage(t *testing.T) {
	code, _, stderr := runCheckCommand(t, "--help")
	if code != 0 || !strings.Contains(stderr, "Usage: pgveil check") || !strings.Contains(stderr, "Exit status: 0 when the rules fit") {
		t.Errorf("--help: exit %d, stderr %q", code, stderr)
	}
	if code, _, _ := runCheckCommand(t, "--no-such-flag"); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
	if code, _, _ := runCheckCommand(t, "--config", "x.yaml", "extra"); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
	if code, _, _ := runCheckCommand(t, "--log-level", "loud"); code != 2 {
		t.Errorf("bad --log-level: exit %d, want 2", code)
	}
	var stderrBuf bytes.Buffer
	dispatch([]string{"help"}, &bytes.Buffer{}, &stderrBuf)
	if !strings.Contains(stderrBuf.String(), "check ") {
		t.Errorf("pgveil help does not list check:\n%s", stderrBuf.String())
	}
}
