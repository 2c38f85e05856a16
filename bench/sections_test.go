package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestModeArgs(t *testing.T) {
	cfg := config{clients: 8, threads: 2, seconds: 5, manyClients: 200}
	for mode, want := range map[string]string{
		"simple":    "-S -M simple -c 8 -j 2 -T 5",
		"extended":  "-S -M extended -c 8 -j 2 -T 5",
		rwMode:      "-b tpcb-like -M extended -c 8 -j 2 -T 5",
		manyMode:    "-S -M simple -c 200 -j 2 -T 5",
		connectMode: "-S -M simple -C -c 8 -j 2 -T 5",
	} {
		if got := strings.Join(modeArgs(cfg, mode, 0), " "); got != want {
			t.Errorf("%s: args %q, want %q", mode, got, want)
		}
	}
	if got := strings.Join(modeArgs(cfg, manyMode, connectAllowance(200)), " "); got != "-S -M simple -c 200 -j 2 -T 13" {
		t.Errorf("many mode with its allowance: %q", got)
	}
	if got := pgbenchModesOf([]string{"simple", bulkSection, rwMode, idleSection, connectMode}); strings.Join(got, ",") != "simple,rw,connect" {
		t.Errorf("pgbench modes %v", got)
	}
}

func TestParseFlagsSections(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.modes, ","); got != "simple,extended,rw,many,connect,bulk,idle" {
		t.Errorf("default sections %q", got)
	}
	if cfg.manyClients != 200 || cfg.bulkRows != 1000000 || cfg.idleSessions != 1000 {
		t.Errorf("defaults %+v", cfg)
	}
	if _, err := parseFlags([]string{"--modes", "simple,bulky"}); err == nil || !strings.Contains(err.Error(), `"bulky"`) {
		t.Errorf("unknown section: %v", err)
	}
	if _, err := parseFlags([]string{"--idle-sessions", "0"}); err == nil || !strings.Contains(err.Error(), "--idle-sessions") {
		t.Errorf("--idle-sessions 0: %v", err)
	}
	if got := maxConnections(cfg); got < cfg.idleSessions+cfg.manyClients {
		t.Errorf("max_connections %d cannot hold %d idle sessions beside a pool of %d", got, cfg.idleSessions, cfg.manyClients)
	}
}

func TestRefusal(t *testing.T) {
	out := `pgbench (15.18 (Debian 15.18-0+deb12u1))
pgbench: error: client 5 script 0 aborted in command 5 query 0: ERROR:  pgveil: column pgbench_accounts.abalance is PII; the operator + on it is not allowed for role pgveil_masked
pgbench: error: client 7 script 0 aborted in command 5 query 0: ERROR:  pgveil: column pgbench_accounts.abalance is PII; the operator + on it is not allowed for role pgveil_masked
number of transactions actually processed: 0
pgbench: error: Run was aborted; the above results are incomplete.
`
	want := "in command 5: pgveil: column pgbench_accounts.abalance is PII; the operator + on it is not allowed for role pgveil_masked"
	if got := refusal(out); got != want {
		t.Errorf("refusal %q, want %q", got, want)
	}
	// A many mode run retries on this error (its clients took -T to connect).
	if _, err := parseOutput(out); !errors.Is(err, errNoTransactions) {
		t.Errorf("no transactions: %v", err)
	}
	// A server error is not a refusal: the bench fails on it.
	if got := refusal("client 0 script 0 aborted in command 5 query 0: ERROR:  deadlock detected\n"); got != "" {
		t.Errorf("server error taken for a refusal: %q", got)
	}
	r := summarise(rwMode, "pgveil-masked", []result{{Mode: rwMode, Target: "pgveil-masked", Refused: want}, {Mode: rwMode, Target: "pgveil", TPS: 100}})
	if r.Refused != want || r.TPS != 0 || len(r.Runs) != 1 {
		t.Errorf("summary of a refused target %+v", r)
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS("Name:\tpgveil\nVmPeak:\t  999 kB\nVmRSS:\t   20124 kB\nThreads:\t5\n")
	if err != nil || got != 20124 {
		t.Errorf("parseVmRSS = %d, %v; want 20124", got, err)
	}
	if _, err := parseVmRSS("Name:\tkthread\n"); err == nil {
		t.Error("a status without VmRSS parsed")
	}
	if own, err := rssKiB(os.Getpid()); err != nil || own <= 0 {
		t.Errorf("own VmRSS %d, %v", own, err)
	}
}

func TestBulkRatios(t *testing.T) {
	rows := bulkRatios([]bulkRow{
		{Target: "direct", Bytes: 200e6, Runs: []float64{2.2, 2.0, 1.9}},
		{Target: "pgveil-masked", Bytes: 210e6, Runs: []float64{2.1, 2.0, 3.0}},
	})
	if rows[0].Seconds != 2.0 || rows[0].MBps != 100 || *rows[0].VsDirect != 1 {
		t.Errorf("direct %+v", rows[0])
	}
	if rows[1].Seconds != 2.1 || rows[1].MBps != 100 || *rows[1].VsDirect != 1.05 {
		t.Errorf("masked %+v (vs direct %v)", rows[1], *rows[1].VsDirect)
	}
	if !isRawEmail([]byte("42"), []byte("person42@example.com")) || isRawEmail([]byte("42"), []byte("p***@example.com")) {
		t.Error("isRawEmail")
	}
	if got := rowsLabel(1000000); got != "1,000,000" {
		t.Errorf("rowsLabel %q", got)
	}
}

func TestPrintSections(t *testing.T) {
	rep := fixedReport()
	var buf bytes.Buffer
	rep.print(&buf)
	out := buf.String()
	for _, want := range []string{
		"rw: pgbench's default read-write script (TPC-B-like: 3 UPDATEs, a SELECT, an INSERT) -M extended, 8 clients",
		"rw pgveil-masked: pgveil refused the script in command 5: pgveil: column pgbench_accounts.abalance is PII",
		"bulk  pgveil-masked", "idle  pgveil", "27.8", "at most 64 KiB per session", "at most 1.05x direct",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestBulkAndIdle loads a small bulk table into a throwaway PostgreSQL and
// reads it directly, and measures this process's memory with idle
// sessions open to it (the "relay" is the test process, which holds the
// client ends).
func TestBulkAndIdle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := config{scale: 1, db: "postgres", bulkRows: 2000, idleSessions: 20, modes: []string{bulkSection}}
	up := startUpstream(t, cfg)
	direct := target{name: "direct", addr: up.addr, user: up.user}
	r, err := readBulk(ctx, cfg, up, direct)
	if err != nil {
		t.Fatal(err)
	}
	// About 215 bytes a row on the wire.
	if r.Rows != 2000 || r.Bytes < 2000*190 || r.Bytes > 2000*240 || r.Seconds <= 0 {
		t.Errorf("bulk read %+v", r)
	}
	// The masked check fails on raw emails: direct read as if masked.
	cfg.maskedUser = up.user
	if _, err := readBulk(ctx, cfg, up, direct); err == nil || !strings.Contains(err.Error(), "raw for the masked role") {
		t.Errorf("raw emails read as masked: %v", err)
	}
	self := idleRelay{name: "self", batches: []idleBatch{{target: "a", user: up.user, sessions: 20}, {target: "b", user: up.user, sessions: 10}},
		start: func(*cleanups) (string, func() int, error) { return up.addr, os.Getpid, nil }}
	var undo cleanups
	rows, err := measureIdle(ctx, up, self, &undo)
	undo.run()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Sessions != 20 || rows[1].Sessions != 10 || rows[0].BeforeKiB <= 0 || rows[1].BeforeKiB != rows[0].AfterKiB {
		t.Errorf("idle rows %+v", rows)
	}
}

func TestVerdicts(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	rep := report{
		Rows: []row{
			{Mode: "simple", Target: "pgbouncer", TPSVsPgbouncer: f(1), CPUVsPgbouncer: f(1)},
			{Mode: "simple", Target: "pgveil", TPSVsPgbouncer: f(1.02), CPUVsPgbouncer: f(1.03)},
			{Mode: "simple", Target: "pgveil-masked", TPSVsPgbouncer: f(0.89)},
			{Mode: rwMode, Target: "pgveil", TPSVsPgbouncer: f(0.5)},
		},
		Bulk: []bulkRow{{Target: "direct", VsDirect: f(1)}, {Target: "pgveil-masked", VsDirect: f(1.05)}},
		Idle: []idleRow{{Target: "pgbouncer", KiBPerSession: 200}, {Target: "pgveil", KiBPerSession: 64.5}},
	}
	var got []string
	for _, v := range rep.verdicts() {
		got = append(got, fmt.Sprintf("%s %v", v.Target, v.Met))
	}
	want := []string{
		"simple pgveil TPS vs pgbouncer true",
		"simple pgveil CPU per txn vs pgbouncer false",
		"simple pgveil-masked TPS vs pgbouncer false",
		"bulk pgveil-masked seconds vs direct true",
		"idle pgveil memory per session false",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("verdicts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var out bytes.Buffer
	printVerdicts(&out, rep.verdicts())
	printed := strings.Join(strings.Fields(out.String()), " ")
	if !strings.Contains(printed, "TPS vs pgbouncer 0.89x >= 0.90x missed") || !strings.Contains(printed, "per session 64.50 KiB <= 64.00 KiB missed") {
		t.Errorf("printed:\n%s", out.String())
	}
}
