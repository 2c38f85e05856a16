package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Options is what a Server needs. cmd/pgveil builds it from the
// configuration file; Reload swaps it whole.
type Options struct {
	// Upstream is the PostgreSQL server's host:port.
	Upstream string
	// ClientTLS, when set, lets clients negotiate TLS (SSLRequest -> 'S').
	ClientTLS *tls.Config
	// UpstreamTLS, when set, is used to connect to the server over TLS.
	// UpstreamTLSRequired fails the connection when the server refuses TLS.
	UpstreamTLS         *tls.Config
	UpstreamTLSRequired bool
	// MaxMessageSize is the largest protocol message accepted from either side.
	MaxMessageSize int64
	// ShutdownTimeout bounds how long Shutdown waits for running queries.
	ShutdownTimeout time.Duration
	// Guard decides per session whether results are masked. Nil relays
	// every session untouched.
	Guard Guard
	// PeerID is this instance's id among peered instances behind one load
	// balancer; 0 turns peering off. Peers maps peer ids to the host:port
	// where each instance accepts clients; a cancel request for a key this
	// instance did not issue is forwarded to all of them. The entry for
	// PeerID itself is skipped, so that every instance can share one list.
	PeerID int
	Peers  map[int]string
	// TransactionPooling says the upstream is a pooler that may give each
	// transaction another server connection (PgBouncer in transaction
	// mode). A masked session then forgets its prepared statements and
	// cursors whenever it is idle, since the next transaction's server
	// may hold another session's under the same names.
	TransactionPooling bool
}

// Server accepts client connections and relays each to its own upstream
// connection. It is safe for concurrent use.
type Server struct {
	opts    atomic.Pointer[Options]
	log     *slog.Logger
	metrics *Metrics

	mu       sync.Mutex
	ln       net.Listener
	sessions map[*session]struct{}
	closing  bool
	wg       sync.WaitGroup

	cancels cancelRegistry
	loops   loops
}

// New creates a server. metrics may be nil (then nothing is registered).
func New(opts Options, log *slog.Logger, metrics *Metrics) *Server {
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	s := &Server{log: log, metrics: metrics, sessions: map[*session]struct{}{}}
	s.cancels.init()
	s.opts.Store(&opts)
	return s
}

// Reload replaces the options. Sessions already open keep their upstream
// connection; everything else applies to the next message or connection.
func (s *Server) Reload(opts Options) { s.opts.Store(&opts) }

func (s *Server) options() *Options { return s.opts.Load() }

// Serve accepts connections on ln until Shutdown. It returns nil after a
// Shutdown, or the listener's error.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.ln = ln
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosing() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.start(c)
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// start runs one client connection on its own goroutine.
func (s *Server) start(c net.Conn) {
	sess := newSession(s, c)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.metrics.ClientsTotal.Inc()
	s.metrics.ClientsCurrent.Inc()
	go func() {
		defer s.wg.Done()
		defer s.metrics.ClientsCurrent.Dec()
		sess.serve()
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
	}()
}

// Shutdown stops accepting connections, closes idle sessions, lets running
// queries finish until ctx is done or the shutdown timeout passes, then
// closes what is left. It returns once every session has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	if s.ln != nil {
		s.ln.Close()
	}
	for sess := range s.sessions {
		sess.shutdown()
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, s.options().ShutdownTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.loops.stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for sess := range s.sessions {
		sess.close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// Sessions returns the number of open client sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}
