// Command soak measures pgveil under load and faults (issue 14): it starts
// a throwaway PostgreSQL, the pgveil binary in front of it, a mixed load
// and a schedule of faults, prints a table of what happened, and exits 1
// when a target is missed. `make soak` runs it for SOAK (default 5m).
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
