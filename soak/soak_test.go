package main

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSoakShort is `make soak` cut to 30 s of load with 200 idle sessions
// and a 5 s outage, run by `make test`: every target must be met. It
// asserts invariants only; the one timing target (new sessions within 1 s
// of the upstream's return) measured 20-60 ms on a loaded 2-core machine.
func TestSoakShort(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "pgveil")
	build := exec.Command("go", "build", "-o", bin, "../cmd/pgveil")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cfg := config{bin: bin, duration: 30 * time.Second, idle: 200, outage: 5 * time.Second,
		workers: 1, slowTotal: 16 << 20, slowRate: 1 << 20}
	var out strings.Builder
	r, err := soak(cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	r.report(&out)
	if testing.Verbose() {
		os.Stdout.WriteString(out.String())
	}
	if len(r.misses) > 0 {
		t.Fatalf("targets missed:\n%s", out.String())
	}
	if r.faults.terminated.Load() == 0 || r.faults.malformed.Load() == 0 || r.faults.vanished.Load() == 0 || r.faults.hups.Load() < 2 {
		t.Fatalf("not every fault ran:\n%s", out.String())
	}
}

// TestConnectTimeoutsNeedTheServersToo: a connect through the proxy that
// timed out is explained only when a direct connect to the server timed
// out over at least half of the same span.
func TestConnectTimeoutsNeedTheServersToo(t *testing.T) {
	t0 := time.Now()
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	r := &run{tally: newTally()}
	r.direct.direct = []span{{start: at(3), end: at(13)}}
	r.direct.proxyTimeout("masked simple", at(0), at(10))   // 7 s of 10 with the server silent too
	r.direct.proxyTimeout("plain pipeline", at(10), at(20)) // 3 s of 10
	r.direct.proxyTimeout("plain COPY in", at(30), at(40))  // the server answered direct connects
	r.tallyTimeouts()
	want := map[string]int64{
		"masked simple connect: " + kindTimeoutDirect: 1,
		"plain pipeline connect: " + kindTimeout:      1,
		"plain COPY in connect: " + kindTimeout:       1,
	}
	if !maps.Equal(r.tally.errors, want) {
		t.Fatalf("tallied %v, want %v", r.tally.errors, want)
	}
	if got := r.tally.unexplained(); len(got) != 2 {
		t.Fatalf("unexplained = %q, want the two the server did not share", got)
	}
}
