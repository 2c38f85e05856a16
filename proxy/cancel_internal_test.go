package proxy

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// TestIssueKeepsServerPID: a key carries the server's process id and a
// fresh secret as long as the server's (protocol 3.0 and 3.2), never the
// server's own; a server key too short to hold both is refused.
func TestIssueKeepsServerPID(t *testing.T) {
	var r cancelRegistry
	r.init()
	for _, secretLen := range []int{4, 32, 256} {
		server := binary.BigEndian.AppendUint32(nil, 4242)
		server = append(server, bytes.Repeat([]byte{0xab}, secretLen)...)
		seen := map[string]bool{}
		for range 100 {
			k, err := r.issue(upstreamTarget{addr: "db:5432", key: server})
			if err != nil {
				t.Fatal(err)
			}
			if k.pid != 4242 || len(k.secret) != secretLen || k.secret == string(server[4:]) || seen[k.secret] {
				t.Fatalf("key pid %d, secret of %d bytes (server's: %v, repeated: %v); want pid 4242 and a fresh secret of %d bytes",
					k.pid, len(k.secret), k.secret == string(server[4:]), seen[k.secret], secretLen)
			}
			seen[k.secret] = true
			if got, ok := r.lookup(k); !ok || !bytes.Equal(got.key, server) {
				t.Fatalf("key not registered for its server session")
			}
		}
	}
	if _, err := r.issue(upstreamTarget{key: []byte{0, 0, 0, 1, 2, 3}}); err == nil {
		t.Fatal("a 6-byte BackendKeyData was accepted")
	}
}
