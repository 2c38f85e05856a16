package rules

import (
	"strings"
	"testing"
)

func TestUpstreamPoolMode(t *testing.T) {
	const base = "listen: 127.0.0.1:6432\nupstream: 127.0.0.1:5432\n"
	for yaml, want := range map[string]string{"": "session", "upstream_pool_mode: transaction\n": "transaction",
		"upstream_pool_mode: session\n": "session"} {
		cfg, err := Parse([]byte(base + yaml))
		if err != nil || cfg.UpstreamPoolMode != want {
			t.Errorf("%q: got %v, %v; want %s", yaml, cfg, err, want)
		}
	}
	_, err := Parse([]byte(base + "upstream_pool_mode: statement\n"))
	if err == nil || !strings.Contains(err.Error(), `upstream_pool_mode: "statement" is not one of session, transaction`) {
		t.Errorf("statement: got %v", err)
	}
}
