package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/rules"
)

// scanSchemaSQL is loaded into its own database: PII under Norwegian and
// English names, and in oddly named columns (notes holds emails, ref
// fødselsnummer, konto IBANs). Every value below is in scanSeeded.
const scanSchemaSQL = `
CREATE TABLE kunder (
  id int8 PRIMARY KEY, epost text UNIQUE NOT NULL, fornavn varchar(40) NOT NULL, etternavn text, telefon varchar(16),
  "fødselsdato" date, adresse text, postnummer char(4), notes text, ref text, land text, anonymized_at timestamptz);
INSERT INTO kunder VALUES
  (1, 'kari.nordmann@example.com', 'Kari', 'Nordmann', '+4791234567', '1985-03-04', 'Storgata 1', '0155', 'kari.private@example.org', '15038512363', 'NO', NULL),
  (2, 'ola.hansen@example.org', 'Ola', 'Hansen', '98765432', '1990-07-15', 'Kirkeveien 7', '0361', 'ola.home@example.net', '41019012393', 'SE', NULL),
  (3, 'ingrid.berg@example.net', 'Ingrid', 'Berg', '+47 412 23 344', '1979-12-24', 'Fjordgata 3', '7010', NULL, '31018500305', 'NO', NULL);
CREATE TABLE orders (
  id int8 PRIMARY KEY, kunde_id int8 REFERENCES kunder, card_number text, ip_address inet, kommentar text,
  "customerEmail" text UNIQUE, konto text, amount numeric(10, 2));
INSERT INTO orders VALUES
  (10, 1, '4111111111111111', '192.0.2.10', 'Kari was unhappy', 'kari.work@example.com', 'NO9386011117947', 10.5),
  (11, 2, '5555 5555 5555 4444', '2001:db8::77', 'Ola wants a call', 'ola.work@example.com', 'DE89370400440532013000', 20);
CREATE TABLE invoices (id int8 PRIMARY KEY, email text REFERENCES kunder (epost), total numeric);
INSERT INTO invoices VALUES (100, 'kari.nordmann@example.com', 99);
CREATE MATERIALIZED VIEW kunde_mv AS SELECT id, epost FROM kunder;
CREATE TABLE products (id int8 PRIMARY KEY, sku text, product_name text, price numeric);
INSERT INTO products VALUES (1, 'SKU-1', 'Kaffe', 10);
`

// scanSeeded are the values of scanSchemaSQL that must never be printed.
var scanSeeded = []string{
	"kari.nordmann", "ola.hansen", "ingrid.berg", "kari.private", "ola.home", "kari.work", "ola.work", "example.",
	"Kari", "Nordmann", "Hansen", "Ingrid", "Berg", "91234567", "98765432", "412 23 344",
	"1985-03-04", "1990-07-15", "1979-12-24", "Storgata", "Kirkeveien", "Fjordgata", "0155", "0361", "7010",
	"15038512363", "41019012393", "31018500305", "4111", "5555", "192.0.2.10", "2001:db8", "unhappy", "wants a call",
	"NO9386011117947", "DE89370400440532013000",
}

func scanDSN(t *testing.T) string {
	t.Helper()
	ctx := testCtx(t)
	if err := db.Exec(ctx, "DROP DATABASE IF EXISTS scantest"); err != nil {
		t.Fatal(err)
	}
	if err := db.Exec(ctx, "CREATE DATABASE scantest"); err != nil {
		t.Fatal(err)
	}
	dsn := db.DSN("postgres", "", "scantest")
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, scanSchemaSQL); err != nil {
		t.Fatal(err)
	}
	return dsn
}

func runScanCommand(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCommand(t, "scan", args...)
}

func TestScanCommand(t *testing.T) {
	dsn := scanDSN(t)
	path := filepath.Join(t.TempDir(), "rules.yaml")
	code, stdout, stderr := runScanCommand(t, "--dsn", dsn, "--write", path)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, v := range scanSeeded {
		if strings.Contains(stdout, v) || strings.Contains(stderr, v) {
			t.Errorf("the output shows the sampled value %q", v)
		}
	}
	want := map[string]string{ // table column -> kind
		"public.kunder epost": "email", "public.kunder fornavn": "name", "public.kunder etternavn": "name",
		"public.kunder telefon": "phone", "public.kunder fødselsdato": "birth_date", "public.kunder adresse": "address",
		"public.kunder postnummer": "postcode", "public.kunder notes": "email", "public.kunder ref": "national_id",
		"public.orders card_number": "card_number", "public.orders ip_address": "ip_address", "public.orders kommentar": "free_text",
		"public.orders customerEmail": "email", "public.orders konto": "bank_account", "public.invoices email": "email",
		"public.kunde_mv epost": "email",
	}
	lines := strings.Split(stdout, "\n")
	if !strings.HasPrefix(lines[0], "TABLE") || !strings.Contains(lines[0], "CONFIDENCE") || !strings.Contains(lines[0], "EVIDENCE") {
		t.Errorf("header: %q", lines[0])
	}
	kindAt := strings.Index(lines[0], "KIND")
	got := make(map[string]string)
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "public.") {
			continue
		}
		fields := strings.Fields(l)
		got[fields[0]+" "+fields[1]] = strings.Fields(l[kindAt:])[0]
	}
	for col, kind := range want {
		if got[col] != kind {
			t.Errorf("%s: kind %q, want %q", col, got[col], kind)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d findings, want %d: %v", len(got), len(want), got)
	}
	if !strings.Contains(stdout, "pgveil scan: 16 candidate columns in 4 of 5 tables") {
		t.Errorf("no summary in stdout")
	}
	checkWrittenRules(t, dsn, path)
}

// checkWrittenRules asserts that rules.Check and pgveil check accept the
// file scan wrote, without a single problem.
func checkWrittenRules(t *testing.T, dsn, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s:\n%s", path, data)
	for _, v := range scanSeeded {
		if bytes.Contains(data, []byte(v)) {
			t.Errorf("the rules file shows the sampled value %q", v)
		}
	}
	cfg, err := rules.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	problems, err := rules.Check(ctx, cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("check: %s", p)
	}
	kunder := cfg.Tables["public.kunder"]
	if kunder == nil || !slices.Equal(kunder.Key, rules.Columns{"id"}) || kunder.AnonymizedMarker != "anonymized_at" {
		t.Fatalf("public.kunder: %+v", kunder)
	}
	for col, want := range map[string]string{"fornavn": "redact/redact", "notes": "email/random_email", "ref": "redact/redact",
		"telefon": "partial:0,2/redact", "fødselsdato": "generalize:year/nullify", "epost": "email/"} {
		c := kunder.Columns[col]
		if c == nil || c.Mask.String()+"/"+c.Anonymize.String() != want {
			t.Errorf("kunder.%s: %+v, want %s", col, c, want)
		}
	}
	if c := cfg.Tables["public.orders"].Columns["kommentar"]; c == nil || c.Anonymize.Text != "This comment has been anonymised based on customer request" {
		t.Errorf("orders.kommentar: %+v", c)
	}
	if code, _, _ := runCheckCommand(t, "--config", path, "--dsn", dsn); code != 0 {
		t.Errorf("pgveil check: exit %d, want 0", code)
	}
}

func TestScanWriteKeepsAnExistingFile(t *testing.T) {
	dsn := db.DSN("postgres", "", "postgres")
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte("mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runScanCommand(t, "--dsn", dsn, "--values", "0", "--write", path)
	if data, _ := os.ReadFile(path); code != 1 || string(data) != "mine\n" || !strings.Contains(stderr, "exists; use --force") {
		t.Errorf("without --force: exit %d, file %q", code, data)
	}
	code, _, _ = runScanCommand(t, "--dsn", dsn, "--values", "0", "--write", path, "--force")
	if data, _ := os.ReadFile(path); code != 0 || !strings.Contains(string(data), "tables:") {
		t.Errorf("with --force: exit %d, file %q", code, data)
	}
}

func TestScanUsage(t *testing.T) {
	for _, args := range [][]string{{"extra"}, {"--values", "-1"}, {"--timeout", "0s"}, {"--force"}, {"--listen", "nowhere"}, {"--nope"}} {
		if code, _, _ := runScanCommand(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	if code, _, stderr := runScanCommand(t, "--help"); code != 0 || !strings.Contains(stderr, "never prints a sampled value") {
		t.Errorf("--help: exit %d", code)
	}
}
