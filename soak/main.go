// Command soak measures pgveil under load and faults (issue 14): it starts
// a throwaway PostgreSQL, the pgveil binary in front of it, a mixed load
// and a schedule of faults, prints a table of what happened, and exits 1
// when a target is missed. `make soak` runs it for SOAK (default 5m).
//
// The load: per kind, --workers sessions in a loop, reconnecting after any
// error: masked lookups over the simple and the extended protocol, masked
// cursors and COPY TO, unmasked pipelines and COPY FROM, and ANONYMIZE
// batches of 50 keys. Every masked row is checked for a raw value, so a
// reload that lost the rules would show.
//
// The faults: pg_terminate_backend of a random load backend every 150-350
// ms; the server stopped for --outage once every idle session is open and
// 40% of the run has passed, then started (new sessions must succeed
// within 1 s of direct ones); SIGHUP every 1.5 s with a broken file every
// other time; a slow reader of 1 MiB rows at 1 MiB/s (80% of the run's
// seconds in MiB, at most 1 GiB: 240 MiB in 5 minutes, not the 1
// GiB, which would take 17 minutes at that rate); a client that resets
// its connection (SO_LINGER 0) after 256 KiB of a 1 GB result every 300
// ms; a raw socket sending a malformed or truncated message every 200 ms.
//
// The idle sessions are real sessions, each with its own server backend
// (the proxy does not pool), so max_connections is --idle plus 200. They
// log in as an unmasked role, since a masked session's setup reads the
// catalog and they only wait; the terminator spares them, so only the
// outage may end them, and what they were told is checked at the end.
//
// The targets, checked after every client has left: no panic and a clean
// exit on SIGTERM; sessions back to 0, goroutines back to the baseline
// taken after a warm-up of every role, open files too but for up to 4
// connections of the guard's catalog pool (closed after a minute idle);
// peak resident memory under 96 MiB + 128 KiB per session, whatever the
// size of the results; every client error one whose SQLSTATE a fault
// explains (tally.go); and every customer, read directly from the server,
// either untouched or anonymized with all its survey answers, with every
// key of a committed batch anonymized.
//
// A connect through the proxy that times out (10 s, no SQLSTATE) is
// explained only when the server did the same to a direct client: a
// probe connects to the server directly every 100 ms for the whole run,
// and a proxy connect's timeout counts as explained when a direct connect
// timed out over at least half of the same span (direct.go).
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	cfg := config{}
	flag.StringVar(&cfg.bin, "pgveil", "bin/pgveil", "the pgveil binary")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Minute, "how long the load runs")
	flag.IntVar(&cfg.idle, "idle", 1000, "idle sessions held open")
	flag.DurationVar(&cfg.outage, "outage", 10*time.Second, "how long the upstream is stopped")
	flag.IntVar(&cfg.workers, "workers", 2, "sessions per kind of load")
	slowMB := flag.Int64("slow-mb", 0, "MiB the slow reader reads (default: what 1 MiB/s reads in 80% of the run, at most 1024)")
	flag.Parse()
	cfg.slowRate = 1 << 20
	cfg.slowTotal = *slowMB << 20
	if cfg.slowTotal == 0 {
		cfg.slowTotal = min(1<<30, int64(cfg.duration.Seconds()*0.8)*cfg.slowRate)
	}
	r, err := soak(cfg, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	r.report(os.Stdout)
	if len(r.misses) > 0 {
		os.Exit(1)
	}
}
