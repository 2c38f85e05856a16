package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// TestMeasureDirect runs the real pgbench against a throwaway PostgreSQL
// and checks every metric comes back, including the CPU of a "relay" (this
// test process, which is busy enough to use some CPU).
func TestMeasureDirect(t *testing.T) {
	ctx := context.Background()
	cfg := config{scale: 1, clients: 2, threads: 1, seconds: 1, rounds: 1, modes: []string{"extended"}, db: "postgres"}
	up := startUpstream(t, cfg)
	self := target{name: "direct", addr: up.addr, user: up.user, pid: os.Getpid}
	r, err := measure(ctx, cfg, up, self, "extended", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if r.Txns <= 0 || r.TPS <= 0 || r.AvgMs <= 0 || r.Failed != 0 {
		t.Errorf("implausible result %+v", r)
	}
	if r.P99Ms < r.AvgMs/10 || r.P99Ms > 1000 {
		t.Errorf("p99 %.3f ms is implausible next to avg %.3f ms", r.P99Ms, r.AvgMs)
	}
	if r.CPUUsPerTxn == nil || *r.CPUUsPerTxn < 0 {
		t.Errorf("CPU per transaction = %v, want a non-negative number", r.CPUUsPerTxn)
	}
	if up.version == "" {
		t.Error("server version not recorded")
	}
}

// startUpstream starts a throwaway PostgreSQL, stopped at the test's end,
// and loads cfg's data into it.
func startUpstream(t *testing.T, cfg config) *upstream {
	t.Helper()
	c, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	up, err := newUpstream(c.Addr(), "postgres", cfg.db, c.BinDir)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := prepareData(ctx, cfg, up); err != nil {
		t.Fatal(err)
	}
	return up
}

func TestParseOutput(t *testing.T) {
	out := `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 10
query mode: simple
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 18776
number of failed transactions: 3 (0.016%)
latency average = 0.816 ms
initial connection time = 12.345 ms
tps = 9807.065726 (without initial connection time)
`
	r, err := parseOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Txns != 18776 || r.Failed != 3 || r.AvgMs != 0.816 || r.TPS != 9807.065726 {
		t.Errorf("parsed %+v", r)
	}
	if _, err := parseOutput("connection to server failed\n"); err == nil {
		t.Error("output without a summary parsed without error")
	}
}

func TestParseStatTicks(t *testing.T) {
	// The command name holds a space and a ')' to trip naive splitting.
	stat := "4242 (my) relay) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 4 0 123 0 0"
	got, err := parseStatTicks(stat)
	if err != nil || got != 325 {
		t.Errorf("parseStatTicks = %d, %v; want 325", got, err)
	}
	if _, err := parseStatTicks("garbage"); err == nil {
		t.Error("garbage parsed without error")
	}
	if _, err := procTicks(os.Getpid()); err != nil {
		t.Errorf("own /proc stat: %v", err)
	}
}

func TestPercentileMedianRatios(t *testing.T) {
	values := make([]float64, 0, 200)
	for i := 200; i >= 1; i-- {
		values = append(values, float64(i))
	}
	if got := percentile(values, 99); got != 198 {
		t.Errorf("p99 of 1..200 = %v, want 198", got)
	}
	if got := median([]float64{5, 1, 3, 2}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
	cpuB, cpuV := 20.0, 30.0
	rows := withRatios([]row{
		{Target: "direct", TPS: 300},
		{Target: "pgbouncer", TPS: 200, CPUUsPerTxn: &cpuB},
		{Target: "pgveil", TPS: 100, CPUUsPerTxn: &cpuV},
	})
	if *rows[0].TPSVsPgbouncer != 1.5 || rows[0].CPUVsPgbouncer != nil {
		t.Errorf("direct ratios: %v, %v", *rows[0].TPSVsPgbouncer, rows[0].CPUVsPgbouncer)
	}
	if *rows[2].TPSVsPgbouncer != 0.5 || *rows[2].CPUVsPgbouncer != 1.5 {
		t.Errorf("pgveil ratios: %v, %v", *rows[2].TPSVsPgbouncer, *rows[2].CPUVsPgbouncer)
	}
}

func TestRoundOrderAlternates(t *testing.T) {
	ts := []target{{name: "a"}, {name: "b"}, {name: "c"}}
	first, second := roundOrder(ts, 1), roundOrder(ts, 2)
	if first[0].name != "a" || second[0].name != "c" || ts[0].name != "a" {
		t.Errorf("orders %v / %v (base %v)", first, second, ts)
	}
}

func TestConnectMode(t *testing.T) {
	out := `number of transactions actually processed: 512
number of failed transactions: 0 (0.000%)
latency average = 62.500 ms
average connection time = 61.000 ms
tps = 128.000000 (including reconnection times)
`
	r, err := parseOutput(out)
	if err != nil || r.TPS != 128 || r.Txns != 512 {
		t.Fatalf("parsed %+v, %v", r, err)
	}
	ts := []target{{name: "direct"}, {name: "pgveil"}, {name: "direct", connect: true}, {name: "pgveil-pgbouncer", connect: true}}
	if got := targetsFor(connectMode, ts); len(got) != 2 || !got[0].connect || got[1].name != "pgveil-pgbouncer" {
		t.Errorf("connect targets %v", got)
	}
	if got := targetsFor("simple", ts); len(got) != 2 || got[0].connect || got[1].name != "pgveil" {
		t.Errorf("simple targets %v", got)
	}
	if got := strings.Join(modeArgs(config{clients: 8, threads: 2}, connectMode, 0), " "); got != "-S -M simple -C -c 8 -j 2 -T 0" {
		t.Errorf("connect args %q", got)
	}
	up := &upstream{user: "postgres", login: scramLogin}
	if env := loginEnv(up, target{user: scramLogin.name}); len(env) != 1 || env[0] != "PGPASSWORD="+scramLogin.password {
		t.Errorf("login env %q", env)
	}
	if env := loginEnv(up, target{user: "postgres"}); env != nil {
		t.Errorf("env for the trusted role %q", env)
	}
	if got := up.unmasked(); got != "postgres, "+scramLogin.name {
		t.Errorf("unmasked %q", got)
	}
}
