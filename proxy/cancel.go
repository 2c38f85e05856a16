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
type cancelKey struct {
	pid    uint32
	secret string
}

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
// as the server's (4 bytes for protocol 3.0, up to 256 for 3.2).
func (r *cancelRegistry) issue(t upstreamTarget) cancelKey {
	secretLen := max(len(t.key)-4, 4)
	for {
		var b [4]byte
		secret := make([]byte, secretLen)
		rand.Read(b[:])
		rand.Read(secret)
		k := cancelKey{pid: binary.BigEndian.Uint32(b[:]) &^ (1 << 31), secret: string(secret)}
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

// handleCancel serves a CancelRequest packet: when the key is known, it
// sends the server's own key to the server on a new connection. As in
// PostgreSQL, the requester gets no reply either way.
func (s *Server) handleCancel(body []byte) {
	var req pgproto3.CancelRequest
	if err := req.Decode(body); err != nil {
		s.log.Warn("malformed cancel request", "err", err)
		return
	}
	t, ok := s.cancels.lookup(cancelKey{pid: req.ProcessID, secret: string(req.SecretKey)})
	if !ok {
		s.log.Debug("cancel request for an unknown key")
		return
	}
	if err := sendCancel(t); err != nil {
		s.log.Warn("could not forward cancel request", "upstream", t.addr, "err", err)
	}
}

// sendCancel sends a CancelRequest for t's upstream session. Cancel requests
// are never sent over TLS-wrapped connections by this proxy: PostgreSQL
// accepts them in plain text before any SSL negotiation.
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
