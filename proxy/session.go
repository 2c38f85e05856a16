package proxy

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// session is one client connection and its upstream connection.
//
// Lifecycle: serve reads the startup packet (negotiating TLS), dials the
// upstream, relays authentication, then runs two pumps: client->server on
// the session's goroutine and server->client on a second one. When either
// ends, both connections are closed and serve returns after the other pump
// has stopped, so no goroutine outlives its session.
type session struct {
	srv  *Server
	opts *Options // as they were when the session started
	log  *slog.Logger

	client   net.Conn
	upstream net.Conn
	// fromClient and fromServer own the read buffers of each direction.
	fromClient *pump
	fromServer *pump
	// onLoop is set while an event loop relays the session; its sockets
	// then belong to the loop.
	onLoop atomic.Pointer[loopSession]

	user, database string
	params         map[string]string
	firstReady     []byte   // the ReadyForQuery that ends authentication
	masking        *masking // nil when the session is relayed untouched
	key            cancelKey
	keyIssued      bool
	upstreamKey    []byte

	clientMu  sync.Mutex // serializes writes to the client
	closeOnce sync.Once
	closed    atomic.Bool
	// serverSaidFatal is set when the server sent a FATAL or PANIC error, so
	// that its closing the connection needs no word from the proxy.
	serverSaidFatal atomic.Bool
	shutting        atomic.Bool // Shutdown asked; close at the next ReadyForQuery
	idle            atomic.Bool // the last server message was ReadyForQuery and nothing is pending

	pendingSyncs atomic.Int32 // Query and Sync messages forwarded, not yet answered
	batchStart   atomic.Int64 // unix nanos when pendingSyncs went from 0 to 1
}

func newSession(srv *Server, c net.Conn) *session {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &session{srv: srv, opts: srv.options(), log: srv.log, client: c}
}

// serve runs the session to its end.
func (s *session) serve() {
	defer s.close()
	err := s.setup()
	if m := s.masking; m != nil {
		defer m.policy.Close() // after the relay, on a loop or not, or a setup that failed late
	}
	if err != nil || s.upstream == nil {
		s.endWith(err) // a nil error with no upstream was a cancel request
		return
	}
	s.log.Debug("session started", "user", s.user, "database", s.database)
	s.relay()
}

// setup runs the startup and authentication phases.
func (s *session) setup() error {
	s.client.SetDeadline(time.Now().Add(startupTimeout))
	startup, err := s.readStartup()
	if err != nil || startup == nil {
		return err
	}
	s.params = startup.Parameters
	s.user = startup.Parameters["user"]
	s.database = startup.Parameters["database"]
	if s.database == "" {
		s.database = s.user
	}
	up, err := s.dialUpstream()
	if err != nil {
		return err
	}
	s.upstream = up
	s.fromClient = newPump(s.client, s.upstream, s.opts.MaxMessageSize)
	s.fromServer = newPump(s.upstream, s.client, s.opts.MaxMessageSize)
	if err := s.authenticate(startup); err != nil {
		return err
	}
	if err := s.openPolicy(); err != nil {
		return err
	}
	s.client.SetDeadline(time.Time{})
	s.upstream.SetReadDeadline(time.Time{})
	return nil
}

// relay runs both pumps until one side ends: on an event loop when the
// server has one and both sockets are plain TCP, else on two goroutines.
func (s *session) relay() {
	s.fromClient.bytes = s.srv.metrics.BytesFromClients
	s.fromServer.bytes = s.srv.metrics.BytesFromServers
	s.idle.Store(true)
	if l := s.srv.loops.pick(); l != nil && s.relayOnLoop(l) {
		return
	}
	var fromClient, fromServer handler = clientHandler{s}, &serverHandler{s: s}
	if m := s.masking; m != nil {
		fromClient, fromServer = maskedClient{m}, maskedServer{m, &serverHandler{s: s}}
	}
	s.fromServer.dst = lockedWriter{s}
	s.fromClient.grow()
	s.fromServer.grow()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := s.fromServer.run(fromServer)
		if !s.closed.Load() {
			s.endGoroutines(false, err)
		}
	}()
	err := s.fromClient.run(fromClient)
	s.endGoroutines(true, err)
	<-done
}

// endGoroutines ends a session relayed by goroutines.
func (s *session) endGoroutines(fromClient bool, err error) {
	if msg := s.endMessage(fromClient, err); msg != nil {
		s.writeClient(msg)
	}
	s.close()
}

// endMessage logs why the session ends (the pump that read from the client
// when fromClient, else the one that read from the server, stopped with err)
// and returns the FATAL message the client should get, or nil.
func (s *session) endMessage(fromClient bool, err error) []byte {
	var pe *protocolError
	switch {
	case s.closed.Load():
		return nil
	case fromClient && errors.As(err, &pe):
		s.srv.metrics.Errors.WithLabelValues("protocol").Inc()
		s.log.Warn("closing client after a protocol violation", "user", s.user, "err", pe)
		return fatalMessage(codeProtocolViolation, "pgveil: "+pe.Error())
	case fromClient:
		if err != nil && !errors.Is(err, io.EOF) {
			s.log.Info("session ended", "user", s.user, "reason", err)
		}
		return nil
	case errors.As(err, &pe):
		s.srv.metrics.Errors.WithLabelValues("protocol").Inc()
		s.log.Warn("invalid message from upstream", "user", s.user, "err", pe)
		return fatalMessage(codeProtocolViolation, "pgveil: invalid message from upstream: "+pe.Error())
	case !s.serverSaidFatal.Load():
		s.srv.metrics.Errors.WithLabelValues("upstream").Inc()
		s.log.Info("upstream connection lost", "user", s.user, "err", err)
		return fatalMessage(codeConnectionFailure, "pgveil: lost connection to upstream "+s.opts.Upstream)
	}
	return nil
}

// endWith tells the client why its session ends, when it should be told.
func (s *session) endWith(err error) {
	var ce *clientError
	switch {
	case errors.As(err, &ce):
		s.log.Info("session refused", "user", s.user, "code", ce.code, "reason", ce.msg)
		s.writeClient(fatalMessage(ce.code, ce.msg))
	case errors.Is(err, errAuthFailed), errors.Is(err, io.EOF), err == nil:
	default:
		s.log.Info("session ended during startup", "user", s.user, "reason", err)
	}
}

// writeClient writes to the client, serialized with the server pump. Before
// the relay starts and on goroutines it writes at once; on an event loop it
// is queued there.
func (s *session) writeClient(b []byte) error {
	if ls := s.onLoop.Load(); ls != nil {
		ls.l.post(func() { ls.writeClientNow(b) })
		return nil
	}
	s.clientMu.Lock()
	defer s.clientMu.Unlock()
	return writeAll(s.client, b)
}

// close closes both connections once.
func (s *session) close() {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		if ls := s.onLoop.Load(); ls != nil {
			ls.l.post(ls.closeNow)
		}
		s.client.Close()
		if s.upstream != nil {
			s.upstream.Close()
		}
		if s.keyIssued {
			s.srv.cancels.forget(s.key)
		}
	})
}

// shutdown asks the session to end: at once when idle, otherwise after
// the running query's ReadyForQuery.
func (s *session) shutdown() {
	s.shutting.Store(true)
	if s.idle.Load() {
		s.terminate()
	}
}

// terminate ends a session from the proxy's side, telling the client why.
func (s *session) terminate() {
	msg := fatalMessage(codeAdminShutdown, "terminating connection because pgveil is shutting down")
	if ls := s.onLoop.Load(); ls != nil {
		ls.l.post(func() { ls.terminate(msg) })
		return
	}
	s.writeClient(msg)
	if s.upstream != nil {
		writeAll(s.upstream, []byte{'X', 0, 0, 0, 4})
	}
	s.close()
}

// lockedWriter writes to the client under the session's client lock.
type lockedWriter struct{ s *session }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.s.clientMu.Lock()
	defer w.s.clientMu.Unlock()
	return w.s.client.Write(b)
}

// clientHandler watches client->server traffic of an untouched session.
type clientHandler struct{ s *session }

func (clientHandler) whole(typ byte) bool { return typ == 'Q' || typ == 'S' || typ == 'P' }

func (h clientHandler) handle(out, msg []byte) ([]byte, error) {
	if msg[0] != 'P' {
		h.s.startQuery()
	}
	if g := h.s.opts.Guard; g != nil && msg[0] != 'S' {
		return h.s.screen(g, out, msg)
	}
	return append(out, msg...), nil
}

// screen lets the guard refuse a Query or Parse of an untouched session.
// A refused message is replaced by one that makes the server raise the
// guard's error, so the transaction and the protocol state follow as for
// any server error.
func (s *session) screen(g Guard, out, msg []byte) ([]byte, error) {
	text := msg[headerLen:]
	if msg[0] == 'P' {
		if _, rest, err := cstring(text); err == nil {
			text = rest
		}
	}
	end := bytes.IndexByte(text, 0)
	if end < 0 {
		return out, &protocolError{errors.New("missing string terminator")}
	}
	refusal := g.Screen(s.user, text[:end])
	if refusal == nil {
		return append(out, msg...), nil
	}
	s.rejected()
	raise := raiseSQL(refusal.Error())
	if msg[0] == 'Q' {
		return appendQuery(out, raise), nil
	}
	name, _, _ := cstring(msg[headerLen:])
	out, _ = (&pgproto3.Parse{Name: name, Query: raise}).Encode(out)
	return out, nil
}

// raiseSQL is a statement that fails with SQLSTATE 42501 and msg.
func raiseSQL(msg string) string {
	msg = strings.ReplaceAll(msg, "$pgveil$", "")
	msg = strings.ReplaceAll(msg, "'", "''")
	return "DO $pgveil$BEGIN RAISE EXCEPTION USING ERRCODE = '42501', MESSAGE = '" + msg + "'; END$pgveil$"
}

// serverHandler watches server->client traffic of an untouched session.
type serverHandler struct{ s *session }

func (*serverHandler) whole(typ byte) bool { return typ == 'Z' || typ == 'E' }

func (h *serverHandler) handle(out, msg []byte) ([]byte, error) {
	if msg[0] == 'E' {
		h.s.noteError(msg)
	} else {
		h.s.endQuery()
	}
	return append(out, msg...), nil
}

// noteError counts a server error and notes whether it ends the session.
func (s *session) noteError(msg []byte) {
	s.srv.metrics.Errors.WithLabelValues("server").Inc()
	switch errorSeverity(msg) {
	case "FATAL", "PANIC":
		s.serverSaidFatal.Store(true)
	}
}

// startQuery notes that a Query or Sync was forwarded.
func (s *session) startQuery() {
	if s.pendingSyncs.Add(1) == 1 {
		s.batchStart.Store(time.Now().UnixNano())
		s.idle.Store(false)
	}
}

// endQuery notes a ReadyForQuery, records latency, and ends the session
// here when a shutdown is waiting for it.
func (s *session) endQuery() {
	m := s.srv.metrics
	m.Queries.Inc()
	if s.pendingSyncs.Add(-1) > 0 {
		return
	}
	s.pendingSyncs.Store(0)
	m.QueryLatency.Observe(float64(time.Now().UnixNano()-s.batchStart.Load()) / 1e9)
	s.idle.Store(true)
	if s.shutting.Load() {
		go s.terminate()
	}
}

// rejected counts and logs a rejected message. The error's text is left
// out: a parser's error can quote a literal of the query. The guard logs
// its rejections with their reasons.
func (s *session) rejected() {
	s.srv.metrics.Errors.WithLabelValues("rejected").Inc()
	s.log.Debug("statement refused", "user", s.user)
}
