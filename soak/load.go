package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// errLeak is a masked session that got a raw value back: the rules in
// force were lost (a reload, a fault) and nothing may explain that.
var errLeak = errors.New("masked session got an unmasked value")

// loadWorker runs one kind of transaction on its own session in a loop,
// reconnecting after any error, until ctx ends.
func (r *run) loadWorker(ctx context.Context, role, work string, op func(context.Context, *pgx.Conn) error) {
	var c *pgx.Conn
	defer func() {
		if c != nil {
			c.Close(context.Background())
		}
	}()
	for ctx.Err() == nil {
		if c == nil {
			var err error
			start := time.Now()
			if c, err = connect(ctx, r.env.dsn(role)); err != nil {
				r.connectFailed(ctx, work, start, err)
				pause(ctx, 50*time.Millisecond)
				continue
			}
		}
		opCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := op(opCtx, c)
		cancel()
		if err == nil {
			r.tally.ok(work)
			continue
		}
		if errors.Is(err, errLeak) {
			r.tally.leaks.Add(1)
		}
		r.failUnlessDone(ctx, work, err)
		c.Close(context.Background())
		c = nil
	}
}

// failUnlessDone counts an error unless it is the run ending.
func (r *run) failUnlessDone(ctx context.Context, work string, err error) {
	if ctx.Err() == nil {
		r.tally.fail(work, err)
	}
}

func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return pgx.Connect(cctx, dsn)
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func randomID() int64 { return rand.Int64N(customers) + 1 }

// rawValue matches a customer's email or first name as loaded.
var rawValue = regexp.MustCompile(`^(c[0-9]+@example\.com|First[0-9]+)$`)

// checkMasked fails when a masked session saw a raw email or name.
func checkMasked(vals ...string) error {
	for _, v := range vals {
		if rawValue.MatchString(v) {
			return fmt.Errorf("%w: %q", errLeak, v)
		}
	}
	return nil
}

// maskedSimple: a masked lookup over the simple protocol.
func maskedSimple(ctx context.Context, c *pgx.Conn) error {
	var email, name string
	err := c.QueryRow(ctx, "SELECT email, first_name FROM customers WHERE id = $1", pgx.QueryExecModeSimpleProtocol, randomID()).Scan(&email, &name)
	if err != nil {
		return err
	}
	return checkMasked(email, name)
}

// maskedExtended: a masked range over the extended protocol (a prepared
// statement, cached by pgx).
func maskedExtended(ctx context.Context, c *pgx.Conn) error {
	rows, err := c.Query(ctx, "SELECT email, first_name FROM customers WHERE id BETWEEN $1 AND $1 + 20", randomID())
	if err != nil {
		return err
	}
	for rows.Next() {
		var email, name string
		if err := rows.Scan(&email, &name); err != nil {
			return err
		}
		if err := checkMasked(email, name); err != nil {
			rows.Close()
			return err
		}
	}
	return rows.Err()
}

// maskedCursor: a masked cursor fetched in pieces inside a transaction.
func maskedCursor(ctx context.Context, c *pgx.Conn) error {
	tx, err := c.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "DECLARE cur CURSOR FOR SELECT email FROM customers WHERE id > $1 ORDER BY id", randomID()); err != nil {
		return err
	}
	for range 3 {
		rows, err := tx.Query(ctx, "FETCH 10 FROM cur")
		if err != nil {
			return err
		}
		emails, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if err := checkMasked(emails...); err != nil {
			return err
		}
	}
	return tx.Commit(ctx)
}

// maskedCopyOut: COPY TO STDOUT of a masked column.
func maskedCopyOut(ctx context.Context, c *pgx.Conn) error {
	var b strings.Builder
	if _, err := c.PgConn().CopyTo(ctx, &b, fmt.Sprintf("COPY (SELECT email FROM customers WHERE id BETWEEN %d AND %d) TO STDOUT", randomID(), customers)); err != nil {
		return err
	}
	return checkMasked(strings.Fields(b.String())...)
}

// plainPipeline: an unmasked pipeline of five statements in one round trip.
func plainPipeline(ctx context.Context, c *pgx.Conn) error {
	b := &pgx.Batch{}
	for range 5 {
		b.Queue("SELECT email FROM customers WHERE id = $1", randomID())
	}
	res := c.SendBatch(ctx, b)
	for range 5 {
		var email string
		if err := res.QueryRow().Scan(&email); err != nil {
			res.Close()
			return err
		}
		if !strings.HasSuffix(email, "@example.com") && !strings.HasSuffix(email, "@anonymized.invalid") {
			res.Close()
			return fmt.Errorf("unmasked session got %q", email)
		}
	}
	return res.Close()
}

// plainCopyIn: an unmasked COPY FROM STDIN of 500 rows.
func plainCopyIn(ctx context.Context, c *pgx.Conn) error {
	rows := make([][]any, 500)
	for i := range rows {
		rows[i] = []any{int64(i), "note"}
	}
	_, err := c.CopyFrom(ctx, pgx.Identifier{"sink"}, []string{"id", "note"}, pgx.CopyFromRows(rows))
	return err
}

// anonymizer runs ANONYMIZE batches of 50 keys and records the keys of
// those that committed, for the all-or-nothing check.
type anonymizer struct {
	mu        sync.Mutex
	committed []int64
}

func (a *anonymizer) batch(ctx context.Context, c *pgx.Conn) error {
	ids := make([]int64, 50)
	for i := range ids {
		ids[i] = randomID()
	}
	if _, err := c.Exec(ctx, "ANONYMIZE customers WHERE id = ANY($1)", ids); err != nil {
		return err
	}
	a.mu.Lock()
	a.committed = append(a.committed, ids...)
	a.mu.Unlock()
	return nil
}
