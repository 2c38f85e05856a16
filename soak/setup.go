package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// Roles of the run. The idle holders are unmasked: they only hold their
// session open, and an unmasked session costs the proxy no catalog reads.
const (
	roleMasked = "soak_masked"
	rolePlain  = "soak_plain"
	roleDPO    = "soak_dpo"
	roleIdle   = "soak_idle"
)

// customers is the number of rows ANONYMIZE batches pick from.
const customers = 20000

const schemaSQL = `
CREATE TABLE customers (id int8 PRIMARY KEY, email text, first_name text, anonymized_at timestamptz);
CREATE TABLE survey_responses (id int8 PRIMARY KEY, customer_id int8 REFERENCES customers, comment text);
CREATE TABLE sink (id int8, note text);
INSERT INTO customers SELECT g, 'c' || g || '@example.com', 'First' || g, NULL FROM generate_series(1, %[1]d) g;
INSERT INTO survey_responses SELECT g, (g - 1) %% %[1]d + 1, 'Comment of ' || ((g - 1) %% %[1]d + 1) FROM generate_series(1, 2 * %[1]d) g;
CREATE ROLE soak_masked LOGIN; CREATE ROLE soak_plain LOGIN; CREATE ROLE soak_dpo LOGIN; CREATE ROLE soak_idle LOGIN;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO soak_masked, soak_plain, soak_dpo;
GRANT CREATE ON SCHEMA public TO soak_dpo;
`

const rulesYAML = `
roles:
  unmasked: [postgres, soak_plain, soak_idle]
  anonymize: [soak_dpo]
tables:
  public.customers:
    key: id
    anonymized_marker: anonymized_at
    columns:
      email:      {mask: email, anonymize: random_email, lookup: true}
      first_name: {mask: redact, anonymize: redact}
  public.survey_responses:
    key: id
    parent: {table: public.customers, via: customer_id}
    columns:
      comment: {mask: redact, anonymize: "text:Anonymised"}
`

// brokenYAML is what the configuration file holds between two reloads.
const brokenYAML = "tables: [broken\n"

// env is what one run sets up: the cluster, the proxy process and its
// configuration file.
type env struct {
	cluster *pgtest.Cluster
	proxy   *pgtest.Process
	config  string
	good    []byte
	listen  string
	metrics string
	logPath string
}

func startCluster(idle int) (*pgtest.Cluster, error) {
	c, err := pgtest.Start(pgtest.Options{Settings: map[string]string{
		"max_connections": fmt.Sprint(idle + 200),
		"shared_buffers":  "64MB",
	}})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Exec(ctx, fmt.Sprintf(schemaSQL, customers)); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// startProxy writes the configuration and starts the pgveil binary.
func startProxy(bin string, c *pgtest.Cluster) (*env, error) {
	e := &env{cluster: c, listen: freeAddr(), metrics: freeAddr(), config: filepath.Join(c.Dir, "pgveil.yaml"), logPath: filepath.Join(c.Dir, "pgveil.log")}
	e.good = []byte(fmt.Sprintf("listen: %s\nupstream: %s\nmetrics_listen: %s\nadmin_dsn: %s\nshutdown_timeout: 5s\n%s",
		e.listen, c.Addr(), e.metrics, c.DSN("postgres", "", "postgres"), rulesYAML))
	if err := os.WriteFile(e.config, e.good, 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(e.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", "--config", e.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if e.proxy, err = pgtest.StartProcess(cmd); err != nil {
		return nil, err
	}
	if err := pgtest.WaitReady(e.dsn(rolePlain), e.proxy, 30*time.Second); err != nil {
		e.proxy.Stop(syscall.SIGKILL, 5*time.Second)
		return nil, fmt.Errorf("pgveil: %w\n%s", err, pgtest.Tail(e.logPath, 2048))
	}
	return e, nil
}

func (e *env) dsn(role string) string {
	return "postgres://" + role + "@" + e.listen + "/postgres?sslmode=disable&application_name=soak"
}

// proxyLog returns the proxy's log so far.
func (e *env) proxyLog() string {
	b, _ := os.ReadFile(e.logPath)
	return string(b)
}

// stop shuts the proxy down with SIGTERM and reports a non-clean exit.
func (e *env) stop() error {
	err := e.proxy.Stop(syscall.SIGTERM, 20*time.Second)
	if strings.Contains(e.proxyLog(), "panic:") {
		return fmt.Errorf("the proxy panicked:\n%s", pgtest.Tail(e.logPath, 4096))
	}
	return err
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
