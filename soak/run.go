package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
)

// config is one run's shape.
type config struct {
	bin       string        // the pgveil binary
	duration  time.Duration // of the load
	idle      int           // sessions held open, idle
	outage    time.Duration // how long the server is stopped
	slowTotal int64         // bytes the slow reader reads in all
	slowRate  int64         // bytes a second
	workers   int           // sessions per load kind
}

// run is one soak run's state.
type run struct {
	cfg    config
	env    *env
	tally  *tally
	faults faults
	direct directProbe
	anon   anonymizer
	peaks  peaks

	before, after stats
	anonChecked   int64
	anonBroken    int64
	anonMissing   int64
	misses        []string
	idleOpened    chan struct{} // closed once every idle session is open
	leaked        bool          // goroutines or files stayed: dump the goroutines
}

// catalogPoolConns is how many connections the guard's catalog pool of a
// database may keep open after the clients have left (masking's poolConns;
// it closes them after a minute idle, longer than a run waits). They are
// the only files allowed above the baseline.
const catalogPoolConns = 4

// memoryBound is the most resident memory the proxy may use: a fixed
// allowance plus 128 KiB per session (two 32 KiB read buffers, output
// buffers and goroutine stacks). It does not depend on result sizes.
func memoryBound(sessions float64) float64 { return 96<<20 + sessions*(128<<10) }

func soak(cfg config, out io.Writer) (*run, error) {
	raiseFileLimit()
	c, err := startCluster(cfg.idle)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	e, err := startProxy(cfg.bin, c)
	if err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, env: e, tally: newTally(), idleOpened: make(chan struct{})}
	fmt.Fprintf(out, "soak: PostgreSQL at %s, pgveil at %s; %s of load, %d idle sessions\n", c.Addr(), e.listen, cfg.duration, cfg.idle)
	if r.before, err = r.warmUp(); err != nil {
		e.stop()
		return nil, err
	}
	r.load()
	r.check()
	if r.leaked {
		r.dumpGoroutines(out)
	} else if err := e.stop(); err != nil {
		r.miss("clean proxy exit: %v", err)
	} else if err := e.proxy.Err(); err != nil {
		r.miss("clean proxy exit: %v", err)
	}
	return r, nil
}

// load runs the workers and the faults for the configured time, then
// stops every client.
func (r *run) load() {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.duration)
	defer cancel()
	stopSampling := make(chan struct{})
	go r.peaks.sample(r.env.metrics, stopSampling)
	var wg sync.WaitGroup
	spawn := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	type kind struct {
		role, work string
		op         func(context.Context, *pgx.Conn) error
	}
	kinds := []kind{
		{roleMasked, "masked simple", maskedSimple}, {roleMasked, "masked extended", maskedExtended},
		{roleMasked, "masked cursor", maskedCursor}, {roleMasked, "masked COPY out", maskedCopyOut},
		{rolePlain, "plain pipeline", plainPipeline}, {rolePlain, "plain COPY in", plainCopyIn},
		{roleDPO, "ANONYMIZE batch", r.anon.batch},
	}
	for _, k := range kinds {
		for range r.cfg.workers {
			spawn(func() { r.loadWorker(ctx, k.role, k.work, k.op) })
		}
	}
	spawn(func() { r.direct.run(ctx, r.env.cluster.DSN("postgres", "", "postgres")) })
	spawn(func() { r.holdIdle(ctx, r.cfg.idle) })
	spawn(func() { r.terminator(ctx) })
	spawn(func() { r.reloader(ctx) })
	spawn(func() { r.slowReader(ctx, r.cfg.slowTotal, r.cfg.slowRate) })
	spawn(func() { r.vanisher(ctx) })
	spawn(func() { r.malformedSender(ctx) })
	spawn(func() {
		pause(ctx, r.cfg.duration*2/5)
		select {
		case <-ctx.Done():
		case <-r.idleOpened:
		}
		if ctx.Err() == nil {
			if err := r.outage(ctx, r.cfg.outage); err != nil {
				r.miss("upstream restart: %v", err)
			}
		}
	})
	wg.Wait()
	close(stopSampling)
}

func (r *run) miss(format string, args ...any) {
	r.misses = append(r.misses, fmt.Sprintf(format, args...))
}

// check tests the targets once every client has gone.
func (r *run) check() {
	r.after = r.waitBaseline(30 * time.Second)
	if r.after.sessions != 0 {
		r.miss("sessions left open after the clients left: %.0f", r.after.sessions)
	}
	r.leaked = r.after.fds > r.before.fds+catalogPoolConns || r.after.goroutines > r.before.goroutines
	if r.after.fds > r.before.fds+catalogPoolConns {
		r.miss("file descriptors: %.0f before, %.0f after (up to %d more may be the catalog pool's)", r.before.fds, r.after.fds, catalogPoolConns)
	}
	if r.after.goroutines > r.before.goroutines {
		r.miss("goroutines: %.0f before, %.0f after", r.before.goroutines, r.after.goroutines)
	}
	p := r.peaks.get()
	if bound := memoryBound(p.sessions); p.rss > bound {
		r.miss("peak memory %s over the bound %s for %.0f sessions", mib(p.rss), mib(bound), p.sessions)
	}
	if !r.faults.outageDone.Load() {
		r.miss("the upstream outage did not run")
	} else if r.faults.recovery > time.Second {
		r.miss("new sessions took %s after the upstream returned (target 1s)", r.faults.recovery)
	}
	r.tallyTimeouts()
	for _, u := range r.tally.unexplained() {
		r.miss("error no fault explains: %s", u)
	}
	r.faults.idleKinds.Range(func(k, _ any) bool {
		if !explained(k.(string)) {
			r.miss("idle session told %s", k)
		}
		return true
	})
	if n := r.tally.leaks.Load(); n > 0 {
		r.miss("%d masked results came back unmasked", n)
	}
	if int(r.faults.idleOpen.Load()) < r.cfg.idle {
		r.miss("only %d of %d idle sessions opened", r.faults.idleOpen.Load(), r.cfg.idle)
	}
	if err := r.checkAnonymize(); err != nil {
		r.miss("ANONYMIZE check: %v", err)
	}
}

// waitBaseline polls the proxy's figures until no session is left and
// its goroutines and files are back to where they were before the load,
// or the deadline passes; it returns the last figures.
func (r *run) waitBaseline(timeout time.Duration) stats {
	deadline := time.Now().Add(timeout)
	for {
		s, err := scrape(r.env.metrics)
		done := err == nil && s.sessions == 0 && s.fds <= r.before.fds+catalogPoolConns && s.goroutines <= r.before.goroutines
		if done || time.Now().After(deadline) {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkAnonymize reads every customer and its survey answers directly from
// the server: each must be wholly as loaded or wholly anonymized, and
// every key of a committed batch anonymized.
func (r *run) checkAnonymize() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := pgx.Connect(ctx, r.env.cluster.DSN("postgres", "", "postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	err = c.QueryRow(ctx, `
		WITH s AS (SELECT customer_id, bool_and(comment = 'Comment of ' || customer_id) AS raw,
		                  bool_and(comment = 'Anonymised') AS anon FROM survey_responses GROUP BY customer_id)
		SELECT count(*),
		  count(*) FILTER (WHERE NOT (
		    (c.anonymized_at IS NULL AND c.email = 'c' || c.id || '@example.com' AND c.first_name = 'First' || c.id AND s.raw)
		    OR (c.anonymized_at IS NOT NULL AND c.email LIKE 'anon-%@anonymized.invalid' AND c.first_name <> 'First' || c.id AND s.anon))),
		  count(*) FILTER (WHERE c.anonymized_at IS NULL AND c.id = ANY($1))
		FROM customers c JOIN s ON s.customer_id = c.id`, r.anon.committed).Scan(&r.anonChecked, &r.anonBroken, &r.anonMissing)
	if err != nil {
		return err
	}
	if r.anonBroken > 0 || r.anonMissing > 0 {
		return fmt.Errorf("%d customers half-anonymized, %d keys of committed batches not anonymized", r.anonBroken, r.anonMissing)
	}
	return nil
}

// report prints the table the issue asks for.
func (r *run) report(out io.Writer) {
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "transactions\t\t\n")
	var total int64
	for _, k := range sortedKeys(r.tally.txns) {
		fmt.Fprintf(w, "  %s\t%d\t\n", k, r.tally.txns[k])
		total += r.tally.txns[k]
	}
	fmt.Fprintf(w, "  total\t%d\t(%.0f/s)\n", total, float64(total)/r.cfg.duration.Seconds())
	fmt.Fprintf(w, "client errors\t\t\n")
	for _, k := range sortedKeys(r.tally.errors) {
		work, kind, _ := strings.Cut(k, ": ")
		why := explanation(strings.TrimSuffix(work, " connect"), kind)
		if why == "" {
			why = "NOT EXPLAINED"
		}
		fmt.Fprintf(w, "  %s\t%d\t%s\n", k, r.tally.errors[k], why)
	}
	r.faults.idleKinds.Range(func(k, v any) bool {
		fmt.Fprintf(w, "  idle session: %s\t%d\t\n", k, v.(*atomic.Int64).Load())
		return true
	})
	f := &r.faults
	fmt.Fprintf(w, "faults\t\t\n")
	fmt.Fprintf(w, "  backends terminated\t%d\t\n", f.terminated.Load())
	fmt.Fprintf(w, "  upstream stopped\t%s\tnew sessions %s after it accepted again\n", r.cfg.outage, f.recovery.Round(time.Millisecond/10))
	d := &r.direct
	fmt.Fprintf(w, "  direct connects (probe)\t%d\t%d timed out, the longest took %s\n", d.attempts, len(d.direct), d.longest.Round(time.Millisecond))
	fmt.Fprintf(w, "  SIGHUP\t%d\t%d with a broken file\n", f.hups.Load(), f.brokenHups.Load())
	fmt.Fprintf(w, "  slow reader\t%s\tat %s/s\n", mib(float64(f.slowBytes.Load())), mib(float64(r.cfg.slowRate)))
	fmt.Fprintf(w, "  vanished mid-result (RST)\t%d\t\n", f.vanished.Load())
	fmt.Fprintf(w, "  malformed messages\t%d\t%d sessions closed cleanly\n", f.malformed.Load(), f.malformedOK.Load())
	fmt.Fprintf(w, "  idle sessions held\t%d\t%d told of a fault\n", f.idleOpen.Load(), f.idleErrors.Load())
	p := r.peaks.get()
	fmt.Fprintf(w, "proxy\tbefore / peak / after\t\n")
	fmt.Fprintf(w, "  sessions\t%.0f / %.0f / %.0f\t\n", r.before.sessions, p.sessions, r.after.sessions)
	fmt.Fprintf(w, "  resident memory\t%s / %s / %s\tbound %s\n", mib(r.before.rss), mib(p.rss), mib(r.after.rss), mib(memoryBound(p.sessions)))
	fmt.Fprintf(w, "  Go heap in use\t%s / %s / %s\t\n", mib(r.before.heap), mib(p.heap), mib(r.after.heap))
	fmt.Fprintf(w, "  open files\t%.0f / %.0f / %.0f\t\n", r.before.fds, p.fds, r.after.fds)
	fmt.Fprintf(w, "  goroutines\t%.0f / %.0f / %.0f\t\n", r.before.goroutines, p.goroutines, r.after.goroutines)
	fmt.Fprintf(w, "ANONYMIZE\t\t\n")
	fmt.Fprintf(w, "  customers checked\t%d\t%d half-applied, %d committed keys not applied\n", r.anonChecked, r.anonBroken, r.anonMissing)
	w.Flush()
	if len(r.misses) == 0 {
		fmt.Fprintln(out, "every target met")
	}
	for _, m := range r.misses {
		fmt.Fprintln(out, "MISSED:", m)
	}
}

// raiseFileLimit lifts the soft limit on open files to the hard one, for
// this process and the proxy it starts: 1,000 idle sessions are 2,000
// sockets in the proxy and 1,000 here.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

var errMissed = errors.New("soak: a target was missed")

// warmUp runs one session of each role through the proxy (the guard opens
// its catalog connections, the audit table is created), waits until they
// are gone, and returns the proxy's figures then: the baseline that the
// figures after the run are held to.
func (r *run) warmUp() (stats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, w := range []struct{ role, sql string }{
		{rolePlain, "SELECT 1"}, {roleMasked, "SELECT email FROM customers WHERE id = 1"},
		{roleDPO, "ANONYMIZE customers WHERE id = 0"},
	} {
		c, err := connect(ctx, r.env.dsn(w.role))
		if err != nil {
			return stats{}, err
		}
		_, err = c.Exec(ctx, w.sql)
		c.Close(ctx)
		if err != nil {
			return stats{}, fmt.Errorf("warm-up as %s: %w", w.role, err)
		}
	}
	r.before = stats{goroutines: 1e9, fds: 1e9}
	s := r.waitBaseline(10 * time.Second)
	return s, nil
}

// dumpGoroutines ends the proxy with SIGQUIT, which makes the Go runtime
// print every goroutine, and prints the end of that to out.
func (r *run) dumpGoroutines(out io.Writer) {
	fmt.Fprintln(out, "--- the proxy's open files after the run ---")
	fmt.Fprint(out, openFiles(r.env.proxy.Pid()))
	r.env.proxy.Stop(syscall.SIGQUIT, 10*time.Second)
	fmt.Fprintln(out, "--- where the proxy's goroutines were after the run ---")
	for _, line := range goroutineSummary(r.env.proxyLog()) {
		fmt.Fprintln(out, line)
	}
}

// goroutineSummary counts the goroutines of a Go traceback by the first
// function of theirs that is not the runtime's.
func goroutineSummary(dump string) []string {
	counts := map[string]int64{}
	inG, found := false, false
	for _, line := range strings.Split(dump, "\n") {
		switch {
		case strings.HasPrefix(line, "goroutine "):
			inG, found = true, false
		case line == "":
			inG = false
		case inG && !found && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "runtime.") && !strings.HasPrefix(line, "created by"):
			fn, _, _ := strings.Cut(line, "(")
			counts[fn]++
			found = true
		}
	}
	var out []string
	for _, k := range sortedKeys(counts) {
		out = append(out, fmt.Sprintf("%5d %s", counts[k], k))
	}
	return out
}

// openFiles lists a process's open files, sockets with their addresses.
func openFiles(pid int) string {
	var b strings.Builder
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		target, _ := os.Readlink(dir + "/" + e.Name())
		fmt.Fprintf(&b, "  fd %s -> %s\n", e.Name(), target)
	}
	ss, _ := exec.Command("ss", "-tanp").Output()
	for _, line := range strings.Split(string(ss), "\n") {
		if strings.Contains(line, fmt.Sprintf("pid=%d,", pid)) {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	return b.String()
}
