package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/rules"
)

// TestDemo runs the demo as `pgveil demo` does, then uses it through the
// connection lines it prints: the masked role's lookup by email, the
// aggregate, the unmasked role's raw values, the anonymize role's
// ANONYMIZE with its cascade, and the rules against the live catalog.
// Cancelling the context stops it and removes its directory.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- demo(runCtx, "127.0.0.1:0", &out, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	text := waitOutput(t, &out, done, "Ctrl-C stops everything")
	for _, q := range []string{demoLookup, demoNPS, demoAnonymize, demoAfter} {
		if !strings.Contains(text, "\n  "+q+"\n") {
			t.Errorf("the demo does not print %q", q)
		}
	}
	conns := demoConns(t, ctx, text)
	dir := demoDir(t, text)

	checkDemoRules(t, ctx, dir, conns["dba"])
	checkDemoMasked(t, ctx, conns["support"], conns["dba"])
	checkDemoAnonymize(t, ctx, conns["dpo"], conns["dba"])

	for _, c := range conns {
		c.Close(ctx)
	}
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("demo returned %v after cancel, want nil", err)
		}
	case <-ctx.Done():
		t.Fatal("demo did not stop after cancel")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there after the demo stopped (stat: %v)", dir, err)
	}
}

// waitOutput polls out until it contains want, the demo returns or the
// deadline passes; it returns the output.
func waitOutput(t *testing.T, out *syncBuffer, done <-chan error, want string) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if s := out.String(); strings.Contains(s, want) {
			return s
		}
		select {
		case err := <-done:
			t.Fatalf("demo returned %v before it was ready; output:\n%s", err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the demo's output after 2 minutes:\n%s", want, out.String())
		}
	}
}

// demoConns connects with every psql line of the demo's output, by role.
func demoConns(t *testing.T, ctx context.Context, text string) map[string]*pgx.Conn {
	t.Helper()
	lines := regexp.MustCompile(`psql "([^"]*user=(\w+)[^"]*)"`).FindAllStringSubmatch(text, -1)
	conns := map[string]*pgx.Conn{}
	for _, m := range lines {
		c, err := pgx.Connect(ctx, m[1])
		if err != nil {
			t.Fatalf("connect with %q: %v", m[1], err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		conns[m[2]] = c
	}
	for _, role := range []string{"support", "dba", "dpo"} {
		if conns[role] == nil {
			t.Fatalf("no psql line for %s in:\n%s", role, text)
		}
	}
	return conns
}

// demoDir is the temporary directory named in the "pgveil listens on ...
// with DIR/pgveil.yaml" line.
func demoDir(t *testing.T, text string) string {
	t.Helper()
	m := regexp.MustCompile(`pgveil listens on \S+ with (\S+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no config path in:\n%s", text)
	}
	return filepath.Dir(m[1])
}

// checkDemoRules runs rules.Check on the demo's config as written: no
// errors and no warnings.
func checkDemoRules(t *testing.T, ctx context.Context, dir string, conn *pgx.Conn) {
	t.Helper()
	cfg, err := rules.Load(filepath.Join(dir, "pgveil.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	problems, err := rules.Check(ctx, cfg, conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("rules.Check: %s", p)
	}
}

// checkDemoMasked: support sees masked values, finds a row by email, and
// gets the aggregate; dba sees the raw values.
func checkDemoMasked(t *testing.T, ctx context.Context, support, dba *pgx.Conn) {
	t.Helper()
	var id int64
	var number, email, first, phone string
	var birth time.Time
	if err := support.QueryRow(ctx, demoLookup).Scan(&id, &number, &email, &first, &phone, &birth); err != nil {
		t.Fatalf("lookup by email as support: %v", err)
	}
	if id != 27 || number != "C-100027" || email != "***@example.com" || first != "***" ||
		!strings.HasPrefix(phone, "+47 ") || strings.Count(phone, "*") < 6 || birth.Month() != 1 || birth.Day() != 1 {
		t.Errorf("support's lookup gave %d %q %q %q %q %v; want customer 27, masked", id, number, email, first, phone, birth)
	}
	var rawEmail, rawFirst, rawPhone string
	if err := dba.QueryRow(ctx, "SELECT email, first_name, phone FROM customers WHERE id = 27").Scan(&rawEmail, &rawFirst, &rawPhone); err != nil {
		t.Fatal(err)
	}
	if rawEmail != "kari.olsen@example.com" || rawFirst != "Kari" || strings.Contains(rawPhone, "*") {
		t.Errorf("dba sees %q %q %q; want the raw values", rawEmail, rawFirst, rawPhone)
	}
	rows, err := support.Query(ctx, demoNPS)
	if err != nil {
		t.Fatal(err)
	}
	segments, err := pgx.CollectRows(rows, pgx.RowToMap)
	if err != nil {
		t.Fatalf("NPS per segment as support: %v", err)
	}
	if len(segments) != 4 {
		t.Errorf("NPS per segment: %d rows, want 4: %v", len(segments), segments)
	}
}

// checkDemoAnonymize: dpo's ANONYMIZE changes customer 42 and its child
// rows, as dba sees them.
func checkDemoAnonymize(t *testing.T, ctx context.Context, dpo, dba *pgx.Conn) {
	t.Helper()
	var comments, transcripts int
	err := dba.QueryRow(ctx, `SELECT (SELECT count(*) FROM survey_responses WHERE customer_id = 42 AND comment IS NOT NULL),
	  (SELECT count(*) FROM conversations WHERE customer_id = 42)`).Scan(&comments, &transcripts)
	if err != nil || comments == 0 || transcripts == 0 {
		t.Fatalf("customer 42 has %d comments and %d conversations (%v); the example needs both", comments, transcripts, err)
	}
	tag, err := dpo.Exec(ctx, demoAnonymize)
	if err != nil || tag.String() != "ANONYMIZE 1" {
		t.Fatalf("ANONYMIZE as dpo: %q, %v", tag, err)
	}
	var email string
	var first, phone *string
	var marked bool
	var removed int
	err = dba.QueryRow(ctx, strings.TrimSuffix(demoAfter, ";")).Scan(new(int64), &email, &first, new(time.Time), &removed)
	if err != nil {
		t.Fatal(err)
	}
	err = dba.QueryRow(ctx, "SELECT phone, anonymized_at IS NOT NULL FROM customers WHERE id = 42").Scan(&phone, &marked)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(email, "@anonymized.invalid") || first == nil || *first != "***" || phone != nil || !marked {
		t.Errorf("customer 42 after ANONYMIZE: %q %v %v marked=%v", email, first, phone, marked)
	}
	if removed != transcripts {
		t.Errorf("%d of %d transcripts of customer 42 removed", removed, transcripts)
	}
	var left int
	err = dba.QueryRow(ctx, "SELECT count(*) FROM survey_responses WHERE customer_id = 42 AND comment NOT LIKE 'This comment has been anonymised%'").Scan(&left)
	if err != nil || left != 0 {
		t.Errorf("%d comments of customer 42 not anonymised (%v)", left, err)
	}
}
