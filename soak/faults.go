package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// faults counts what was injected.
type faults struct {
	terminated, hups, brokenHups, vanished, malformed, malformedOK atomic.Int64
	slowBytes                                                      atomic.Int64
	recovery                                                       time.Duration // after the outage; -1 if never
	outageDone                                                     atomic.Bool
	idleOpen, idleErrors                                           atomic.Int64
	idleKinds                                                      sync.Map // kind -> *atomic.Int64
}

// terminator ends a random backend of the load roles several times a
// second, on its own direct connection to the server.
func (r *run) terminator(ctx context.Context) {
	var c *pgx.Conn
	for ctx.Err() == nil {
		pause(ctx, time.Duration(150+rand.IntN(200))*time.Millisecond)
		if c == nil {
			var err error
			if c, err = connect(ctx, r.env.cluster.DSN("postgres", "", "postgres")); err != nil {
				continue // the server is down
			}
		}
		var n int64
		err := c.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM (SELECT pid FROM pg_stat_activity
			WHERE usename IN ('soak_masked', 'soak_plain', 'soak_dpo') ORDER BY random() LIMIT 1) t`).Scan(&n)
		if err != nil {
			c.Close(context.Background())
			c = nil
			continue
		}
		r.faults.terminated.Add(n)
	}
	if c != nil {
		c.Close(context.Background())
	}
}

// outage stops the server for d, starts it again, and measures how long
// after the server accepts again a new session through the proxy succeeds.
func (r *run) outage(ctx context.Context, d time.Duration) error {
	if err := r.env.cluster.StopServer(); err != nil {
		return err
	}
	pause(ctx, d)
	back := make(chan time.Time, 1)
	through := make(chan time.Time, 1)
	go firstSuccess(r.env.cluster.DSN("postgres", "", "postgres"), back)
	go firstSuccess(r.env.dsn(rolePlain), through)
	err := r.env.cluster.StartServer()
	r.faults.recovery = max(0, (<-through).Sub(<-back))
	r.faults.outageDone.Store(true)
	return err
}

// firstSuccess polls a new session every 10 ms and sends when one first
// answers a query.
func firstSuccess(dsn string, at chan<- time.Time) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		if pgtest.Ping(dsn) == nil {
			at <- time.Now()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	at <- time.Now().Add(time.Hour)
}

// reloader sends SIGHUP every few seconds, with a broken configuration
// file in place every other time (the proxy must keep the rules in force:
// the masked workers check every row).
func (r *run) reloader(ctx context.Context) {
	broken := false
	for ctx.Err() == nil {
		pause(ctx, 1500*time.Millisecond)
		broken = !broken
		content := r.env.good
		if broken {
			content = []byte(brokenYAML)
			r.faults.brokenHups.Add(1)
		}
		os.WriteFile(r.env.config, content, 0o600)
		syscall.Kill(r.env.proxy.Pid(), syscall.SIGHUP)
		r.faults.hups.Add(1)
	}
	os.WriteFile(r.env.config, r.env.good, 0o600)
}

// slowReader reads a large masked result at about rate bytes a second,
// total bytes in all, one 1 MiB row at a time.
func (r *run) slowReader(ctx context.Context, total, rate int64) {
	const row = 1 << 20
	for ctx.Err() == nil && r.faults.slowBytes.Load() < total {
		asked := time.Now()
		c, err := connect(ctx, r.env.dsn(roleMasked))
		if err != nil {
			r.connectFailed(ctx, "slow reader", asked, err)
			pause(ctx, 100*time.Millisecond)
			continue
		}
		left := (total - r.faults.slowBytes.Load() + row - 1) / row
		rows, err := c.Query(ctx, "SELECT email, repeat('x', $1) FROM customers LIMIT $2", row, left)
		start := time.Now()
		var got int64
		for err == nil && rows.Next() {
			var email, pad string
			if err = rows.Scan(&email, &pad); err == nil {
				err = checkMasked(email)
			}
			got += int64(len(pad))
			r.faults.slowBytes.Add(int64(len(pad)))
			pause(ctx, time.Until(start.Add(time.Duration(got*int64(time.Second)/rate))))
		}
		if err == nil {
			err = rows.Err()
		}
		if err != nil {
			if errors.Is(err, errLeak) {
				r.tally.leaks.Add(1)
			}
			r.failUnlessDone(ctx, "slow reader", err)
		} else {
			r.tally.ok("slow reader")
		}
		c.Close(context.Background())
	}
}

// vanisher starts a large result and resets the connection halfway.
func (r *run) vanisher(ctx context.Context) {
	for ctx.Err() == nil {
		pause(ctx, 300*time.Millisecond)
		conn, fe, err := rawSession(r.env.listen, roleMasked)
		if err != nil {
			continue // counted by the load workers' errors, if any
		}
		fe.Send(&pgproto3.Query{String: "SELECT email, repeat('x', 1000) FROM customers, generate_series(1, 50)"})
		fe.Flush()
		io.CopyN(io.Discard, conn, 256<<10)
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
		r.faults.vanished.Add(1)
	}
}

// rawSession logs role in on a raw socket and reads to ReadyForQuery.
func rawSession(addr, role string) (net.Conn, *pgproto3.Frontend, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber,
		Parameters: map[string]string{"user": role, "database": "postgres", "application_name": "soak"}})
	if err := fe.Flush(); err != nil {
		conn.Close()
		return nil, nil, err
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		switch m := msg.(type) {
		case *pgproto3.ErrorResponse:
			conn.Close()
			return nil, nil, &pgconn.PgError{Severity: m.Severity, Code: m.Code, Message: m.Message}
		case *pgproto3.ReadyForQuery:
			conn.SetDeadline(time.Time{})
			return conn, fe, nil
		}
	}
}

// garbage is one malformed or truncated message, chosen at random.
func garbage() []byte {
	switch rand.IntN(4) {
	case 0: // a length under 4
		return []byte{'Q', 0, 0, 0, byte(rand.IntN(4))}
	case 1: // over max_message_size
		return []byte{'Q', 0x7f, 0xff, 0xff, 0xff, 'S'}
	case 2: // truncated: the header promises more than comes
		b := []byte{'Q', 0, 0, 0, 100}
		return append(b, "SELECT 1"...)
	default: // random bytes
		b := make([]byte, 1+rand.IntN(64))
		for i := range b {
			b[i] = byte(rand.IntN(256))
		}
		return b
	}
}

// malformedSender sends garbage after a valid startup and checks that the
// proxy answers at most a FATAL 08P01 and closes. A FATAL with any other
// code counts as an error of its own.
func (r *run) malformedSender(ctx context.Context) {
	for ctx.Err() == nil {
		pause(ctx, 200*time.Millisecond)
		conn, fe, err := rawSession(r.env.listen, rolePlain)
		if err != nil {
			continue
		}
		conn.SetDeadline(time.Now().Add(20 * time.Second))
		conn.Write(garbage())
		conn.(*net.TCPConn).CloseWrite()
		r.faults.malformed.Add(1)
		for {
			msg, err := fe.Receive()
			if err != nil {
				r.faults.malformedOK.Add(1) // closed, with or without a FATAL
				break
			}
			if e, ok := msg.(*pgproto3.ErrorResponse); ok && e.Code != "08P01" {
				r.failUnlessDone(ctx, "malformed sender", &pgconn.PgError{Severity: e.Severity, Code: e.Code, Message: e.Message})
				break
			}
		}
		conn.Close()
	}
}

// holdIdle opens n sessions and holds them until ctx ends; then it notes
// what each was told meanwhile (only the outage may have ended them).
func (r *run) holdIdle(ctx context.Context, n int) {
	conns := make(chan net.Conn, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n && ctx.Err() == nil; {
				conn, _, err := rawSession(r.env.listen, roleIdle)
				if err != nil {
					r.failUnlessDone(ctx, "idle connect", err)
					pause(ctx, 50*time.Millisecond)
					continue
				}
				i += 8
				r.faults.idleOpen.Add(1)
				conns <- conn
			}
		}()
	}
	wg.Wait()
	close(conns)
	close(r.idleOpened)
	<-ctx.Done()
	for conn := range conns {
		r.idleVerdict(conn)
	}
}

// idleVerdict reads what an idle session was sent, then closes it.
func (r *run) idleVerdict(conn net.Conn) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(time.Millisecond))
	var hdr [5]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return // nothing was sent: the session is alive
	}
	conn.SetReadDeadline(time.Now().Add(time.Second))
	body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
	io.ReadFull(conn, body)
	kind := "no SQLSTATE: message " + string(hdr[:1])
	if hdr[0] == 'E' {
		var e pgproto3.ErrorResponse
		e.Decode(body)
		kind = "SQLSTATE " + e.Code
	}
	r.faults.idleErrors.Add(1)
	v, _ := r.faults.idleKinds.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}
