package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelKey is what the proxy hands the client in BackendKeyData: the
// server's own process id, so that pg_backend_pid(), pg_stat_activity,
// pg_locks and the server's log lines match what the driver reports, and a
// random secret of the proxy's own, so that the client never learns the
// server's secret and every cancel request for the session has to pass
// through a proxy that knows the key.
//
// The key says nothing of the instance that issued it: an instance that
// does not know a key asks its peers (handleCancel). So the secret keeps
// all its random bits: 32 in a protocol 3.0 secret, as in PostgreSQL's
// own keys, and as many as the server's secret has in protocol 3.2.
type cancelKey struct {
	pid    uint32
	secret string
}

// forwardedBit marks a cancel request that an instance passed on to its
// peers, so that they never pass it on again. It is bit 31 of the process
// id: PostgreSQL's process ids are positive 32-bit integers, so the bit is
// clear in every key a server sends, and the registry keys by the process
// id without it.
const forwardedBit = 1 << 31

// upstreamTarget is where a cancel request for one session must go.
type upstreamTarget struct {
	addr string
	key  []byte // the server's BackendKeyData body: process id + secret
}

// cancelRegistry maps the keys handed to clients to their upstream sessions.
type cancelRegistry struct {
	mu   sync.Mutex
	keys map[cancelKey]upstreamTarget
	// forwarding bounds the cancel requests being passed to peers at once
	// (see handleCancel).
	forwarding chan struct{}
}

// maxForwarding is how many unknown keys an instance passes to its peers
// at once; each costs a connection to every peer.
const maxForwarding = 64

func (r *cancelRegistry) init() {
	r.keys = map[cancelKey]upstreamTarget{}
	r.forwarding = make(chan struct{}, maxForwarding)
}

var errBadServerKey = errors.New("malformed BackendKeyData from server")

// issue creates the client's key for an upstream session: the server's
// process id and a fresh secret as long as the server's (4 bytes for
// protocol 3.0, up to 256 for 3.2).
func (r *cancelRegistry) issue(t upstreamTarget) (cancelKey, error) {
	if len(t.key) < 8 {
		return cancelKey{}, errBadServerKey
	}
	pid := binary.BigEndian.Uint32(t.key) &^ forwardedBit
	secret := make([]byte, len(t.key)-4)
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		rand.Read(secret)
		k := cancelKey{pid: pid, secret: string(secret)}
		if _, taken := r.keys[k]; !taken {
			r.keys[k] = t
			return k, nil
		}
	}
}

func (r *cancelRegistry) forget(k cancelKey) {
	r.mu.Lock()
	delete(r.keys, k)
	r.mu.Unlock()
}

func (r *cancelRegistry) lookup(k cancelKey) (upstreamTarget, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.keys[k]
	return t, ok
}

// backendKeyData encodes the key as the client sees it.
func (k cancelKey) backendKeyData(dst []byte) []byte {
	out, _ := (&pgproto3.BackendKeyData{ProcessID: k.pid, SecretKey: []byte(k.secret)}).Encode(dst)
	return out
}

// handleCancel serves a CancelRequest packet. A key issued here is sent to
// the server as the server's own key, on a new connection. A key not
// issued here is passed, with the forwarded bit set, to every peer: the
// one that issued it sends it to the server, the others ignore it, and
// none passes it on again, so a request goes one hop at most whatever the
// peers lists say. As in PostgreSQL, the requester gets no reply either
// way, and what is logged never includes the key.
func (s *Server) handleCancel(body []byte) {
	var req pgproto3.CancelRequest
	if err := req.Decode(body); err != nil {
		s.log.Warn("malformed cancel request", "err", err)
		return
	}
	key := cancelKey{pid: req.ProcessID &^ forwardedBit, secret: string(req.SecretKey)}
	if t, ok := s.cancels.lookup(key); ok {
		s.passCancel(t)
		return
	}
	peers := otherPeers(s.options())
	switch {
	case req.ProcessID&forwardedBit != 0:
		s.cancelIgnored("unknown key, forwarded by a peer")
	case len(peers) == 0:
		s.cancelIgnored("unknown key")
	default:
		s.forwardCancel(key, peers)
	}
}

// otherPeers lists the addresses of every peer but this instance.
func otherPeers(opts *Options) []string {
	if opts.PeerID == 0 {
		return nil
	}
	var addrs []string
	for id, addr := range opts.Peers {
		if id != opts.PeerID {
			addrs = append(addrs, addr)
		}
	}
	return addrs
}

// forwardCancel passes a key to every peer at once, marked forwarded. It
// counts "forwarded" when at least one peer took the request. When
// maxForwarding requests are already on their way (a flood of made-up
// keys), it drops this one rather than open more connections.
func (s *Server) forwardCancel(k cancelKey, peers []string) {
	select {
	case s.cancels.forwarding <- struct{}{}:
		defer func() { <-s.cancels.forwarding }()
	default:
		s.cancelIgnored("unknown key, too many cancel requests being forwarded")
		return
	}
	key := binary.BigEndian.AppendUint32(nil, k.pid|forwardedBit)
	key = append(key, k.secret...)
	delivered := make(chan bool, len(peers))
	for _, addr := range peers {
		go func() {
			err := sendCancel(upstreamTarget{addr: addr, key: key})
			if err != nil {
				s.log.Warn("could not pass a cancel request to a peer", "addr", addr, "err", err)
			}
			delivered <- err == nil
		}()
	}
	result := "failed"
	for range peers {
		if <-delivered {
			result = "forwarded"
		}
	}
	s.log.Debug("cancel request of an unknown key passed to the peers", "peers", len(peers), "result", result)
	s.metrics.Cancels.WithLabelValues(result).Inc()
}

// cancelIgnored counts and logs a cancel request that goes nowhere. The
// key's process id and secret stay out of the log.
func (s *Server) cancelIgnored(why string) {
	s.metrics.Cancels.WithLabelValues("ignored").Inc()
	s.log.Debug("cancel request ignored: " + why)
}

// passCancel sends a cancel request to the server and counts it ("sent",
// or "failed").
func (s *Server) passCancel(t upstreamTarget) {
	result := "sent"
	if err := sendCancel(t); err != nil {
		s.log.Warn("could not pass a cancel request on", "addr", t.addr, "err", err)
		result = "failed"
	}
	s.metrics.Cancels.WithLabelValues(result).Inc()
}

// sendCancel sends a CancelRequest with t's key to t's address: a server
// or a peer. Cancel requests are never sent over TLS-wrapped connections by
// this proxy: PostgreSQL, and pgveil, accept them in plain text before any
// SSL negotiation.
func sendCancel(t upstreamTarget) error {
	c, err := net.DialTimeout("tcp", t.addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	pkt := binary.BigEndian.AppendUint32(nil, uint32(8+len(t.key)))
	pkt = binary.BigEndian.AppendUint32(pkt, cancelRequestCode)
	pkt = append(pkt, t.key...)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := writeAll(c, pkt); err != nil {
		return err
	}
	// Wait for the other end to close, so the cancel is delivered before we
	// return (a peer closes once it has passed the request on).
	var b [1]byte
	c.Read(b[:])
	return nil
}
