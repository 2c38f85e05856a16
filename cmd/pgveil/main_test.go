package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/masking"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rules"
)

var db *pgtest.Cluster

func TestMain(m *testing.M) {
	os.Exit(pgtest.RunMain(m, pgtest.Options{}, setupSchema, &db))
}

// The test schema: a small CRM. Every PII value below is listed in piiValues.
const schemaSQL = `
CREATE TABLE customers (
  id int8 PRIMARY KEY, email text UNIQUE, first_name text, phone text,
  birth_date date, country text, created_at timestamptz, anonymized_at timestamptz);
CREATE TABLE survey_responses (id int8 PRIMARY KEY, customer_id int8 REFERENCES customers, nps int, comment text);
CREATE TABLE orders (id int8 PRIMARY KEY, customer_id int8, amount numeric(10,2));
CREATE TABLE events (id int8, customer_id int8, at date, email text) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE VIEW customer_emails AS SELECT id, email, lower(first_name) AS fname FROM customers;
INSERT INTO customers VALUES
  (1, 'kari.nordmann@example.com', 'Kari', '+4791234567', '1985-03-04', 'NO', '2024-01-05 10:00+00', NULL),
  (2, 'ola.hansen@example.org', 'Ola', '+4798765432', '1990-07-15', 'SE', '2024-02-06 11:00+00', NULL),
  (3, 'ingrid.berg@example.net', 'Ingrid', '+4741122334', '1979-12-24', 'NO', '2024-03-07 12:00+00', NULL);
INSERT INTO survey_responses VALUES (10, 1, 9, 'Kari loved the service'), (11, 2, 3, 'Ola hated waiting'), (12, 3, 10, NULL);
INSERT INTO orders VALUES (100, 1, 10.50), (101, 1, 20.00), (102, 2, 5.25), (103, 3, 99.99);
INSERT INTO events VALUES (1000, 1, '2024-05-01', 'kari.nordmann@example.com');
CREATE ROLE support LOGIN;
CREATE ROLE app_admin LOGIN;
CREATE ROLE support2 LOGIN REPLICATION IN ROLE app_admin;
CREATE ROLE dpo LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO support, app_admin;
GRANT CREATE ON SCHEMA public TO support;
`

// piiValues are the protected values of the schema, for leak checks.
var piiValues = []string{
	"kari.nordmann", "ola.hansen", "ingrid.berg", "Kari", "Ola", "Ingrid",
	"+4791234567", "+4798765432", "+4741122334", "1985-03-04", "1990-07-15", "1979-12-24",
	"loved the service", "hated waiting",
}

const rulesYAML = `
roles:
  unmasked: [postgres, app_admin]
  anonymize: [dpo]
tables:
  public.customers:
    key: id
    anonymized_marker: anonymized_at
    columns:
      email:      {mask: email, anonymize: random_email, lookup: true}
      first_name: {mask: redact, anonymize: redact}
      phone:      {mask: "partial:2,2", anonymize: blank}
      birth_date: {mask: "generalize:year", anonymize: nullify}
  public.survey_responses:
    key: id
    parent: {table: public.customers, via: customer_id}
    columns:
      comment: {mask: redact, anonymize: "text:This comment has been anonymised based on customer request"}
  public.events:
    columns:
      email: {mask: email}
`

func setupSchema(c *pgtest.Cluster) error {
	return c.Exec(context.Background(), schemaSQL)
}

// maskingProxy is a proxy with the masking guard, in front of the test cluster.
type maskingProxy struct {
	srv   *proxy.Server
	guard *masking.Guard
	addr  string
}

func startMaskingProxy(t testing.TB, extraYAML string) *maskingProxy {
	t.Helper()
	return startProxyRules(t, rulesYAML, extraYAML)
}

// startProxyRules starts a proxy with the masking guard and the given
// rules (roles and tables) in front of the test cluster.
func startProxyRules(t testing.TB, rulesText, extraYAML string) *maskingProxy {
	t.Helper()
	return startProxyAt(t, db.Addr(), db.DSN("postgres", "", "postgres"), rulesText, extraYAML)
}

// startProxyAt is startProxyRules with another upstream (such as a
// PgBouncer) and admin_dsn.
func startProxyAt(t testing.TB, upstream, adminDSN, rulesText, extraYAML string) *maskingProxy {
	t.Helper()
	cfg, err := rules.Parse([]byte(fmt.Sprintf("listen: 127.0.0.1:0\nupstream: %s\n%s%s", upstream, rulesText, extraYAML)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.AdminDSN = adminDSN
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	g := masking.NewGuard(cfg, log)
	opts, err := proxyOptions(cfg, g)
	if err != nil {
		t.Fatal(err)
	}
	srv := proxy.New(opts, log, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
		g.Close()
	})
	return &maskingProxy{srv: srv, guard: g, addr: ln.Addr().String()}
}

func (p *maskingProxy) dsn(user string) string {
	u := url.URL{Scheme: "postgres", Host: p.addr, Path: "/postgres", User: url.User(user), RawQuery: "sslmode=disable"}
	return u.String()
}

func (p *maskingProxy) connect(t testing.TB, user string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.dsn(user))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// setups remembers the outcome of each setupOnce by name.
var setups sync.Map // name: *setupResult

type setupResult struct {
	once sync.Once
	err  error
}

// setupOnce runs the statements (creating a test's databases and roles)
// once per test process, and fails every test that needs them if they
// failed.
func setupOnce(t testing.TB, name string, stmts ...string) {
	t.Helper()
	v, _ := setups.LoadOrStore(name, &setupResult{})
	r := v.(*setupResult)
	r.once.Do(func() {
		for _, sql := range stmts {
			if r.err = db.Exec(testCtx(t), sql); r.err != nil {
				return
			}
		}
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}
