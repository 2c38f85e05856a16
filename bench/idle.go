package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/bouncer"
)

// The idle section: the relay's memory per idle session. A fresh relay is
// started for each measurement, so that sessions cannot reuse memory the
// earlier sections' load left free in the process. One session of each
// role runs idleQuery and closes (the relay has then served a query),
// VmRSS is read; then each batch of sessions logs in, each session runs
// idleQuery once and stays open, and VmRSS is read after each batch.
// PgBouncer gets --idle-sessions sessions in one batch, in session mode
// with a pool as large (each holds a server connection after its query);
// one pgveil gets half of them unmasked, then half masked, every session
// with its own server backend.

// idleQuery is what every idle session runs once: for the masked role a
// masked result.
const idleQuery = "SELECT abalance FROM pgbench_accounts WHERE aid = 1"

// idleOpeners is how many sessions are being opened at once.
const idleOpeners = 8

// idleRow is one relay's memory before and with the sessions open.
type idleRow struct {
	Target        string  `json:"target"`
	Sessions      int     `json:"sessions"`
	BeforeKiB     int64   `json:"rss_before_kib"`
	AfterKiB      int64   `json:"rss_after_kib"`
	KiBPerSession float64 `json:"kib_per_session"`
}

// idleRelay is one relay to measure: how to start it, and its batches of
// sessions.
type idleRelay struct {
	name    string
	batches []idleBatch
	start   func(undo *cleanups) (addr string, pid func() int, err error)
}

// idleBatch is sessions sessions logging in as user, reported as a row
// named target.
type idleBatch struct {
	target, user string
	sessions     int
}

// benchIdle measures PgBouncer (when installed), pgveil and pgveil for
// the masked role, one after the other, each relay stopped after its
// measurement.
func benchIdle(ctx context.Context, cfg config, up *upstream, dir string) ([]idleRow, error) {
	var rows []idleRow
	for _, relay := range idleRelays(cfg, up, dir) {
		var local cleanups
		r, err := measureIdle(ctx, up, relay, &local)
		local.run()
		if err != nil {
			return nil, fmt.Errorf("idle sessions through %s: %w", relay.name, err)
		}
		for _, x := range r {
			slog.Info("idle sessions", "target", x.Target, "kib_per_session", x.KiBPerSession)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// idleRelays are the relays the idle section measures.
func idleRelays(cfg config, up *upstream, dir string) []idleRelay {
	var relays []idleRelay
	if bin, err := bouncer.Find(cfg.pgbouncer); err == nil {
		batch := idleBatch{target: "pgbouncer", user: up.user, sessions: cfg.idleSessions}
		relays = append(relays, idleRelay{name: "pgbouncer", batches: []idleBatch{batch}, start: func(undo *cleanups) (string, func() int, error) {
			b, err := startPgbouncer(cfg, bin, bouncer.Session, dir, up.addr, cfg.idleSessions+1, up, undo)
			if err != nil {
				return "", nil, err
			}
			return b.Addr, b.Pid, nil
		}})
	}
	pgveil := idleRelay{name: "pgveil", start: func(undo *cleanups) (string, func() int, error) {
		p, addr, err := startPgveil(cfg, "idle-pgveil", dir, up.addr, bouncer.Session, maskRules(cfg), up, undo)
		if err != nil {
			return "", nil, err
		}
		return addr, p.Pid, nil
	}}
	pgveil.batches = []idleBatch{{target: "pgveil", user: up.user, sessions: cfg.idleSessions}}
	if cfg.maskedUser != "" {
		half := cfg.idleSessions / 2
		pgveil.batches = []idleBatch{{target: "pgveil", user: up.user, sessions: cfg.idleSessions - half},
			{target: "pgveil-masked", user: cfg.maskedUser, sessions: half}}
	}
	return append(relays, pgveil)
}

// measureIdle starts relay and measures its memory before and after
// each batch of sessions, a row per batch; undo stops the relay.
func measureIdle(ctx context.Context, up *upstream, relay idleRelay, undo *cleanups) ([]idleRow, error) {
	addr, pid, err := relay.start(undo)
	if err != nil {
		return nil, err
	}
	for _, b := range relay.batches {
		warm, err := openIdle(ctx, dsn(addr, b.user, up.db), 1)
		closeAll(warm)
		if err != nil {
			return nil, err
		}
	}
	before, err := rssKiB(pid())
	if err != nil {
		return nil, err
	}
	var rows []idleRow
	for _, b := range relay.batches {
		conns, err := openIdle(ctx, dsn(addr, b.user, up.db), b.sessions)
		defer closeAll(conns) // every batch stays open until the last is measured
		if err != nil {
			return nil, err
		}
		after, err := rssKiB(pid())
		if err != nil {
			return nil, err
		}
		rows = append(rows, idleRow{Target: b.target, Sessions: b.sessions, BeforeKiB: before, AfterKiB: after,
			KiBPerSession: float64(after-before) / float64(b.sessions)})
		before = after
	}
	return rows, nil
}

// openIdle opens n sessions to url, idleOpeners at a time, each having
// run idleQuery. On error it closes what it opened.
func openIdle(ctx context.Context, url string, n int) ([]*pgconn.PgConn, error) {
	conns := make([]*pgconn.PgConn, n)
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(idleOpeners, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				conns[i], errs[i] = openOne(ctx, url)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			closeAll(conns)
			return nil, fmt.Errorf("session %d of %d: %w", i+1, n, err)
		}
	}
	return conns, nil
}

// openOne logs in and runs idleQuery.
func openOne(ctx context.Context, url string) (*pgconn.PgConn, error) {
	conn, err := pgconn.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, idleQuery).ReadAll(); err != nil {
		_ = conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

// closeAll closes every open connection in conns.
func closeAll(conns []*pgconn.PgConn) {
	for _, c := range conns {
		if c != nil {
			_ = c.Close(context.Background())
		}
	}
}

// rssKiB is VmRSS of pid from /proc/PID/status, in KiB.
func rssKiB(pid int) (int64, error) {
	status, err := readProc(pid, "status", "relay memory")
	if err != nil {
		return 0, err
	}
	return parseVmRSS(status)
}

// parseVmRSS reads the "VmRSS:   1234 kB" line of a /proc status file.
func parseVmRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		value, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	return 0, fmt.Errorf("no VmRSS line in /proc status %q", status)
}

// printIdle writes the idle section's table.
func printIdle(w io.Writer, rows []idleRow) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\nidle sessions: VmRSS of a fresh relay before and after each batch of sessions, each session idle after one query\n"+
		"  (%s); PgBouncer in session mode; one pgveil, the masked batch opened\n"+
		"  after the unmasked one, both kept open (target: at most 64 KiB per session)\n\n", idleQuery)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "idle\ttarget\tsessions\tRSS before KiB\tRSS after KiB\tKiB per session")
	for _, r := range rows {
		fmt.Fprintf(tw, "idle\t%s\t%d\t%d\t%d\t%.1f\n", r.Target, r.Sessions, r.BeforeKiB, r.AfterKiB, r.KiBPerSession)
	}
	_ = tw.Flush()
}
