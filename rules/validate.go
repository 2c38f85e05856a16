package rules

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
)

// validate checks what can be checked without a database. Every message
// names the key it is about.
func (c *Config) validate() error {
	var errs []error
	add := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	checkAddr(add, "listen", c.Listen, true)
	checkAddr(add, "upstream", c.Upstream, true)
	checkAddr(add, "metrics_listen", c.MetricsListen, false)
	switch c.UpstreamTLS {
	case "disable", "require", "verify-full":
	default:
		add("upstream_tls", "%q is not one of disable, require, verify-full", c.UpstreamTLS)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		add("tls", "cert and key must be given together")
	}
	if c.MaxMessageSize < 1024 {
		add("max_message_size", "%d is too small (at least 1024 bytes)", c.MaxMessageSize)
	}
	c.validatePeers(add)
	for _, name := range sortedKeys(c.Tables) {
		c.validateTable(add, name, c.Tables[name])
	}
	c.validateDatabases(add)
	return errors.Join(errs...)
}

// validatePeers checks peer_id and peers. The instance's own id may be in
// peers (it is ignored), so that every instance can share one peers list.
func (c *Config) validatePeers(add func(string, string, ...any)) {
	if c.PeerID < 0 || c.PeerID > MaxPeerID {
		add("peer_id", "%d is out of range (1 to %d; 0 or absent turns peering off)", c.PeerID, MaxPeerID)
	}
	if len(c.Peers) > 0 && c.PeerID == 0 {
		add("peers", "needs peer_id, the id of this instance")
	}
	ids := make([]int, 0, len(c.Peers))
	for id := range c.Peers {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	byAddr := map[string]int{}
	for _, id := range ids {
		key, addr := fmt.Sprintf("peers.%d", id), c.Peers[id]
		if id < 1 || id > MaxPeerID {
			add(key, "peer id out of range (1 to %d)", MaxPeerID)
		}
		checkAddr(add, key, addr, true)
		if other, dup := byAddr[addr]; dup {
			add(key, "%s is also the address of peer %d", addr, other)
		}
		byAddr[addr] = id
	}
}

func checkAddr(add func(string, string, ...any), key, v string, required bool) {
	if v == "" {
		if required {
			add(key, "missing (host:port)")
		}
		return
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		add(key, "%q is not host:port", v)
	}
}

func (c *Config) validateTable(add func(string, string, ...any), name string, t *Table) {
	key := c.tablesKey() + "." + name
	if t == nil {
		add(key, "empty table entry")
		return
	}
	if schema, rel, ok := strings.Cut(name, "."); !ok || schema == "" || rel == "" {
		add(key, "table names are schema-qualified, like public.customers")
	}
	if t.OnAnonymize != "anonymize" && t.OnAnonymize != "delete" {
		add(key+".on_anonymize", "%q is not anonymize or delete", t.OnAnonymize)
	}
	if t.Parent != nil {
		c.validateParent(add, key+".parent", t.Parent)
	}
	for _, col := range sortedKeys(t.Columns) {
		validateColumn(add, key+".columns."+col, t.Columns[col])
	}
}

// validateParent checks a parent link: its table is declared, and via
// names as many columns as the parent's key.
func (c *Config) validateParent(add func(string, string, ...any), key string, p *Parent) {
	if p.Table == "" || len(p.Via) == 0 {
		add(key, "needs table and via")
		return
	}
	pt, ok := c.Tables[p.Table]
	if !ok {
		add(key+".table", "%s is not declared under %s", p.Table, c.tablesKey())
		return
	}
	if pt != nil && len(pt.Key) > 0 && len(pt.Key) != len(p.Via) {
		add(key+".via", "names %s, but the key of %s has %s %s; via lists the child's columns that hold the parent's key, in the key's order",
			plural(len(p.Via), "1 column", fmt.Sprintf("%d columns", len(p.Via))), p.Table,
			plural(len(pt.Key), "1 column", fmt.Sprintf("%d columns", len(pt.Key))), pt.Key.Tuple())
	}
}

func validateColumn(add func(string, string, ...any), key string, col *Column) {
	if col == nil || col.Mask.Kind == None {
		add(key, "needs a mask strategy")
		return
	}
	if col.Mask.Random() {
		add(key+".mask", "%s is an anonymize strategy; use redact, email or pseudonym to mask", col.Mask)
	}
	if col.Anonymize.Derived() {
		add(key+".anonymize", "%s derives its value from the original and could be traced back; use redact, blank, nullify, text:<fixed>, random_email or random_id", col.Anonymize)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
