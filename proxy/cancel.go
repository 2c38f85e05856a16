package proxy

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelKey is what the proxy hands the client in BackendKeyData: a process
// id and secret of its own, so that a client never learns the server's.
//
// The process id carries the peer id of the instance that issued the key,
// so that any instance behind a load balancer can tell where a
// CancelRequest belongs (as PgBouncer's peering does):
//
//	bit  31      always 0 (clients that read the id as signed see it positive)
//	bit  30      forwarded: set by the instance that passes the request to a peer
//	bits 16..29  peer id of the issuing instance (1..MaxPeerID); random without peering
//	bits  0..15  random
//
// The secret is random throughout, so a key has at least 48 random bits
// with peering (16 in the process id, 32 in a protocol 3.0 secret) and 62
// without.
type cancelKey struct {
	pid    uint32
	secret string
}

// MaxPeerID is the largest peer id the key layout has room for.
const MaxPeerID = 1<<14 - 1

const (
	forwardedBit = 1 << 30
	peerShift    = 16
	randomBits   = 1<<peerShift - 1
)

// keyPID builds a key's process id from random bits and a peer id (0:
// peering off, the peer bits stay random).
func keyPID(random uint32, peerID int) uint32 {
	if peerID == 0 {
		return random &^ (1<<31 | forwardedBit)
	}
	return uint32(peerID)<<peerShift | random&randomBits
}

// keyPeer is the peer id a key's process id carries.
func keyPeer(pid uint32) int { return int(pid>>peerShift) & MaxPeerID }

// upstreamTarget is where a cancel request for one session must go.
type upstreamTarget struct {
	addr string
	key  []byte // the server's BackendKeyData body: process id + secret
}

// cancelRegistry maps the keys handed to clients to their upstream sessions.
type cancelRegistry struct {
	mu   sync.Mutex
	keys map[cancelKey]upstreamTarget
}

func (r *cancelRegistry) init() { r.keys = map[cancelKey]upstreamTarget{} }

// issue creates a fresh key for an upstream session, with a secret as long
// as the server's (4 bytes for protocol 3.0, up to 256 for 3.2) and the
// issuing instance's peer id in the process id (see the key layout above).
func (r *cancelRegistry) issue(t upstreamTarget, peerID int) cancelKey {
	secretLen := max(len(t.key)-4, 4)
	for {
		var b [4]byte
		secret := make([]byte, secretLen)
		rand.Read(b[:])
		rand.Read(secret)
		k := cancelKey{pid: keyPID(binary.BigEndian.Uint32(b[:]), peerID), secret: string(secret)}
		r.mu.Lock()
		if _, taken := r.keys[k]; !taken && k.pid != 0 {
			r.keys[k] = t
			r.mu.Unlock()
			return k
		}
		r.mu.Unlock()
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
// the server as the server's own key, on a new connection. A key another
// peer issued is forwarded to that peer as it came, but with the forwarded
// bit set, so that the peer never forwards it again: one hop at most,
// whatever the peers lists say (PgBouncer allows up to three). As in PostgreSQL, the requester gets no reply
// either way, and what is logged never includes the secret.
func (s *Server) handleCancel(body []byte) {
	var req pgproto3.CancelRequest
	if err := req.Decode(body); err != nil {
		s.log.Warn("malformed cancel request", "err", err)
		return
	}
	pid := req.ProcessID &^ forwardedBit
	if t, ok := s.cancels.lookup(cancelKey{pid: pid, secret: string(req.SecretKey)}); ok {
		s.passCancel(t, "sent")
		return
	}
	opts, peer := s.options(), keyPeer(pid)
	switch addr, known := opts.Peers[peer]; {
	case opts.PeerID == 0 || peer == opts.PeerID:
		s.cancelIgnored("unknown key", peer)
	case req.ProcessID&forwardedBit != 0:
		s.cancelIgnored("unknown key, already forwarded once", peer)
	case !known:
		s.cancelIgnored("unknown peer", peer)
	default:
		key := binary.BigEndian.AppendUint32(nil, req.ProcessID|forwardedBit)
		s.passCancel(upstreamTarget{addr: addr, key: append(key, req.SecretKey...)}, "forwarded")
	}
}

// cancelIgnored counts and logs a cancel request that goes nowhere. The
// key's process id and secret stay out of the log.
func (s *Server) cancelIgnored(why string, peer int) {
	s.metrics.Cancels.WithLabelValues("ignored").Inc()
	s.log.Debug("cancel request ignored: "+why, "peer_id", peer)
}

// passCancel sends a cancel request on (to the server: result "sent", to a
// peer: "forwarded") and counts it.
func (s *Server) passCancel(t upstreamTarget, result string) {
	if err := sendCancel(t); err != nil {
		s.log.Warn("could not pass a cancel request on", "addr", t.addr, "err", err)
		result = "failed"
	} else if result == "forwarded" {
		s.log.Debug("cancel request forwarded to its peer", "addr", t.addr)
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
	// Wait for the server to close, so the cancel is delivered before we return.
	var b [1]byte
	c.Read(b[:])
	return nil
}
