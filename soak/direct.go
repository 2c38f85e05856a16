package main

import (
	"context"
	"errors"
	"sync"
	"time"
)

// kindTimeout is the error kind of a connect that got no answer before
// its 10 s timeout. Through the proxy it is explained only when the server
// left a direct connect unanswered over the same span (kindTimeoutDirect).
const (
	kindTimeout       = "no SQLSTATE: timeout"
	kindTimeoutDirect = "no SQLSTATE: timeout, direct too"
)

// span is one connect attempt that timed out: its workload (through the
// proxy) and when it started and ended.
type span struct {
	work       string
	start, end time.Time
}

// directProbe connects to the server directly, as the proxy does, every
// 100 ms for the whole run, with the load workers' 10 s timeout. It keeps
// the attempts that timed out, and the load's connects through the proxy
// that did, until check compares them.
type directProbe struct {
	mu       sync.Mutex
	attempts int64
	direct   []span // direct connects that timed out
	longest  time.Duration
	proxy    []span // connects through the proxy that timed out, not yet tallied
}

// run polls until ctx ends.
func (p *directProbe) run(ctx context.Context, dsn string) {
	for ctx.Err() == nil {
		start := time.Now()
		c, err := connect(ctx, dsn)
		end := time.Now()
		if err == nil {
			c.Close(context.Background())
		}
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		p.attempts++
		p.longest = max(p.longest, end.Sub(start))
		if errors.Is(err, context.DeadlineExceeded) {
			p.direct = append(p.direct, span{start: start, end: end})
		}
		p.mu.Unlock()
		pause(ctx, 100*time.Millisecond)
	}
}

// connectFailed counts a failed connect through the proxy, unless the run
// is ending. A timeout is only noted: check tallies it once it can ask the
// direct probe about the same span (tallyTimeouts).
func (r *run) connectFailed(ctx context.Context, work string, start time.Time, err error) {
	if ctx.Err() != nil {
		return
	}
	if errorKind(err) == kindTimeout {
		r.direct.proxyTimeout(work, start, time.Now())
		return
	}
	r.tally.fail(work+" connect", err)
}

// proxyTimeout notes a connect through the proxy that timed out.
func (p *directProbe) proxyTimeout(work string, start, end time.Time) {
	p.mu.Lock()
	p.proxy = append(p.proxy, span{work: work, start: start, end: end})
	p.mu.Unlock()
}

// explains reports whether a direct connect timed out over at least half
// of s: the server itself did not answer then, whatever the proxy did.
func (p *directProbe) explains(s span) bool {
	for _, d := range p.direct {
		from, to := d.start, d.end
		if s.start.After(from) {
			from = s.start
		}
		if s.end.Before(to) {
			to = s.end
		}
		if to.Sub(from) >= s.end.Sub(s.start)/2 {
			return true
		}
	}
	return false
}

// tallyTimeouts counts the connects through the proxy that timed out, each
// as kindTimeoutDirect when a direct connect timed out over the same span,
// else as kindTimeout (a miss).
func (r *run) tallyTimeouts() {
	p := &r.direct
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range p.proxy {
		kind := kindTimeout
		if p.explains(s) {
			kind = kindTimeoutDirect
		}
		r.tally.count(s.work+" connect", kind, "timeout: context deadline exceeded")
	}
	p.proxy = nil
}
