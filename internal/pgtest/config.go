package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// defaultSettings are written to postgresql.conf before Options.Settings.
func (c *Cluster) defaultSettings() map[string]string {
	return map[string]string{
		"listen_addresses":        "'127.0.0.1'",
		"port":                    strconv.Itoa(c.Port),
		"unix_socket_directories": quote(c.Dir),
		"max_connections":         "300",
		"fsync":                   "off",
		"synchronous_commit":      "off",
		"full_page_writes":        "off",
		"password_encryption":     "'scram-sha-256'",
		"logging_collector":       "off",
	}
}

// writeSettings appends the default and extra settings to postgresql.conf.
// Later lines win in PostgreSQL, so extra settings override defaults.
func (c *Cluster) writeSettings(extra map[string]string) error {
	var b strings.Builder
	b.WriteString("\n# pgtest\n")
	writeSorted(&b, c.defaultSettings())
	writeSorted(&b, extra)
	path := filepath.Join(c.DataDir, "postgresql.conf")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgtest: open postgresql.conf: %w", err)
	}
	_, err = f.WriteString(b.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgtest: write postgresql.conf: %w", err)
	}
	return nil
}

// writeSorted writes "key = value" lines in key order.
func writeSorted(b *strings.Builder, settings map[string]string) {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(b, "%s = %s\n", k, settings[k])
	}
}

// writeHBA replaces pg_hba.conf with the extra lines followed by trust for
// the unix socket and loopback addresses.
func (c *Cluster) writeHBA(extra []string) error {
	lines := append([]string{"# pgtest"}, extra...)
	lines = append(lines,
		"local all all trust",
		"host all all 127.0.0.1/32 trust",
		"host all all ::1/128 trust",
	)
	path := filepath.Join(c.DataDir, "pg_hba.conf")
	// The file exists (initdb made it), so its owner and mode are kept.
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgtest: write pg_hba.conf: %w", err)
	}
	return nil
}

// quote makes a single-quoted postgresql.conf string.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
