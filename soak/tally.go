package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
)

// tally counts transactions and client errors by kind. A kind is the
// client's view of an error: its SQLSTATE, or "no SQLSTATE" with the Go
// error's gist when the client saw none.
type tally struct {
	mu      sync.Mutex
	txns    map[string]int64  // by workload
	errors  map[string]int64  // by "workload: kind"
	samples map[string]string // one message per kind, for the report
	leaks   atomic.Int64      // masked results that came back unmasked
}

func newTally() *tally {
	return &tally{txns: map[string]int64{}, errors: map[string]int64{}, samples: map[string]string{}}
}

func (t *tally) ok(work string) {
	t.mu.Lock()
	t.txns[work]++
	t.mu.Unlock()
}

func (t *tally) fail(work string, err error) { t.count(work, errorKind(err), err.Error()) }

// count counts one error of a kind, keeping the first message as a sample.
func (t *tally) count(work, kind, msg string) {
	k := work + ": " + kind
	t.mu.Lock()
	t.errors[k]++
	if _, seen := t.samples[k]; !seen {
		t.samples[k] = msg
	}
	t.mu.Unlock()
}

// explainedCodes are the SQLSTATEs the faults of a run cause: a terminated
// backend or a server shut down (57P01), the proxy's word for an upstream
// gone (08006) or not there (08001), a server still starting (57P03), an
// ANONYMIZE that lost its transaction (25P02 after an error in a
// transaction), and a malformed message (08P01, raw senders only).
var explainedCodes = map[string]string{
	"57P01": "backend terminated / server shut down",
	"08006": "upstream connection lost",
	"08001": "upstream not accepting",
	"57P03": "server starting up",
	"08P01": "malformed message sent",
}

// errorKind names an error as a client sees it.
func errorKind(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return "SQLSTATE " + pe.Code
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		var inner *pgconn.PgError
		if errors.As(ce.Unwrap(), &inner) {
			return "SQLSTATE " + inner.Code
		}
	}
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "no SQLSTATE: EOF"
	case errors.Is(err, net.ErrClosed):
		return "no SQLSTATE: closed"
	case errors.Is(err, context.DeadlineExceeded):
		return kindTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return "no SQLSTATE: network"
	}
	return "no SQLSTATE: other"
}

// copyInClosed is how pgx reports a COPY FROM STDIN whose connection the
// server ended: its writer finds the connection it closed on the server's
// FATAL, and that write error is what CopyFrom returns.
const copyInClosed = "no SQLSTATE: closed"

// explanation says which fault explains an error kind of a workload, or
// "" when none does.
func explanation(work, kind string) string {
	if work == "plain COPY in" && kind == copyInClosed {
		return "pgx's COPY writer after a FATAL"
	}
	if kind == kindTimeoutDirect {
		return "the server left direct connects unanswered too"
	}
	code, _ := strings.CutPrefix(kind, "SQLSTATE ")
	return explainedCodes[code]
}

func explained(kind string) bool { return explanation("", kind) != "" }

// unexplained returns the error kinds no fault explains, with a sample.
func (t *tally) unexplained() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for k, n := range t.errors {
		work, kind, _ := strings.Cut(k, ": ")
		if explanation(strings.TrimSuffix(work, " connect"), kind) == "" {
			out = append(out, fmt.Sprintf("%s x%d (%s)", k, n, t.samples[k]))
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
