package rules

import (
	"strings"
	"testing"
)

func TestPeersConfig(t *testing.T) {
	const base = "listen: 127.0.0.1:6432\nupstream: 127.0.0.1:5432\n"
	cfg, err := Parse([]byte(base + "peer_id: 2\npeers:\n  1: 10.0.0.1:6432\n  2: 10.0.0.2:6432\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PeerID != 2 || cfg.Peers[1] != "10.0.0.1:6432" || cfg.Peers[2] != "10.0.0.2:6432" || len(cfg.Peers) != 2 {
		t.Fatalf("parsed %d %v", cfg.PeerID, cfg.Peers)
	}
	if cfg, err := Parse([]byte(base + "peer_id: 3\npeers: {1: 'a:1'}\n")); err != nil || cfg.Peers[1] != "a:1" {
		t.Fatalf("own id may be absent from peers: %v", err)
	}
	bad := map[string]string{
		"peer_id: 16384\n":                          "peer_id: 16384 is out of range (1 to 16383",
		"peer_id: -1\n":                             "peer_id: -1 is out of range",
		"peers: {1: 'a:1'}\n":                       "peers: needs peer_id",
		"peer_id: 1\npeers: {0: 'a:1'}\n":           "peers.0: peer id out of range",
		"peer_id: 1\npeers: {16384: 'a:1'}\n":       "peers.16384: peer id out of range",
		"peer_id: 1\npeers: {2: nohost}\n":          `peers.2: "nohost" is not host:port`,
		"peer_id: 1\npeers: {2: ''}\n":              "peers.2: missing (host:port)",
		"peer_id: 1\npeers: {1: 'a:1', 2: 'a:1'}\n": "peers.2: a:1 is also the address of peer 1",
		"peer_id: 1\npeers:\n  1: a:1\n  01: b:1\n": "peers: line 6: peer id 1 is given twice",
		"peer_id: 1\npeers:\n  one: a:1\n":          `peers: line 5: peer id "one" is not a whole number`,
		"peer_id: 1\npeers: [a:1]\n":                "peers: line 4: a mapping of peer id to host:port",
		"peer_id: 1\npeers: {2: [a]}\n":             "peers.2: line 4: not host:port",
	}
	for yaml, want := range bad {
		_, err := Parse([]byte(base + yaml))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", yaml, err, want)
		}
	}
}
