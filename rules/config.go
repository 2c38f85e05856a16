// Package rules loads and validates pgveil's YAML configuration: where the
// proxy listens and forwards, which login roles see raw data, and which
// columns of which tables hold personal data (PII) with the strategy that
// masks them in results and the strategy that ANONYMIZE writes over them.
//
// Every error names the key path it is about (tables.public.customers.key)
// and, for what the YAML decoder finds, the line: yamlpath.go maps the
// decoder's line numbers back to key paths, and UnmarshalYAML methods report
// through nodeError.
//
// The package holds plain data. It knows nothing of sockets or SQL meaning;
// masking and proxy receive a *Config built once in cmd/pgveil.
package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// DefaultMaxMessageSize is PostgreSQL's own limit for one protocol message.
const DefaultMaxMessageSize = 1 << 30

// Config is the whole configuration file.
type Config struct {
	// Path is the file the configuration was read from ("" when parsed from bytes).
	Path string `yaml:"-"`

	Listen        string `yaml:"listen"`
	Upstream      string `yaml:"upstream"`
	MetricsListen string `yaml:"metrics_listen"`
	// AdminDSN is the connection the proxy uses for its own work (catalog
	// reads, audit tables). Empty means the libpq environment of the process.
	AdminDSN string `yaml:"admin_dsn"`

	TLS             TLS      `yaml:"tls"`
	UpstreamTLS     string   `yaml:"upstream_tls"` // disable (default), require, verify-full
	UpstreamTLSCA   string   `yaml:"upstream_tls_ca"`
	MaxMessageSize  int64    `yaml:"max_message_size"`
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// AuditConfig appends every change of the rules to pgveil.config_log.
	AuditConfig bool `yaml:"audit_config"`
	// PeerID and Peers let several instances behind one TCP load balancer
	// pass cancel requests to each other: PeerID is this instance's id (0
	// or absent: peering off), Peers every instance's id and host:port.
	PeerID int   `yaml:"peer_id"`
	Peers  Peers `yaml:"peers"`

	Roles          Roles             `yaml:"roles"`
	Tables         map[string]*Table `yaml:"tables"`
	AllowFunctions []string          `yaml:"allow_functions"`
}

// TLS is the certificate the proxy presents to clients that ask for SSL.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Enabled reports whether clients may negotiate TLS with the proxy.
func (t TLS) Enabled() bool { return t.Cert != "" }

// Roles lists the login roles that are treated specially. Every other login
// role is masked.
type Roles struct {
	Unmasked  []string `yaml:"unmasked"`
	Anonymize []string `yaml:"anonymize"`
}

// Table declares the PII columns of one table (schema-qualified name).
type Table struct {
	// Key names the column, or the columns, whose values tell one row
	// from every other: key: id, or key: [id, started_at].
	Key              Columns            `yaml:"key"`
	AnonymizedMarker string             `yaml:"anonymized_marker"`
	Parent           *Parent            `yaml:"parent"`
	OnAnonymize      string             `yaml:"on_anonymize"` // anonymize (default) or delete
	Columns          map[string]*Column `yaml:"columns"`
}

// Parent links a child table to the table whose anonymization cascades to it.
// Via names the child's columns that hold the parent's key, as many and
// in the same order as the parent's key columns.
type Parent struct {
	Table string  `yaml:"table"`
	Via   Columns `yaml:"via"`
}

// Column is one PII column.
type Column struct {
	Mask      Strategy `yaml:"mask"`
	Anonymize Strategy `yaml:"anonymize"`
	// Lookup allows equality and IN tests against constants for masked roles.
	Lookup bool `yaml:"lookup"`
}

// MaxPeerID is the largest peer_id: the proxy's cancel keys have 14 bits
// for it.
const MaxPeerID = 1<<14 - 1

// Peers maps peer ids to the host:port where each pgveil instance accepts
// clients.
type Peers map[int]string

// UnmarshalYAML reads the peers mapping. An id that is not a whole number,
// or that is given twice (as 1 and 01, say), is an error naming its line.
// The errors are nodeErrors: Parse puts the key path in front.
func (p *Peers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return nodeError(n, "a mapping of peer id to host:port, like 1: 10.0.0.1:6432")
	}
	out := Peers{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		id, err := strconv.Atoi(k.Value)
		if err != nil {
			return nodeError(k, "peer id %q is not a whole number", k.Value)
		}
		if _, dup := out[id]; dup {
			return nodeError(k, "peer id %d is given twice", id)
		}
		if v.Kind != yaml.ScalarNode {
			return nodeError(v, "not host:port")
		}
		out[id] = v.Value
	}
	*p = out
	return nil
}

// Duration is a time.Duration written as "30s" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return nodeError(n, "%q is not a duration like 30s", n.Value)
	}
	*d = Duration(v)
	return nil
}

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.Path = path
	return cfg, nil
}

// Parse decodes and validates a configuration. Unknown keys are errors.
func Parse(data []byte) (*Config, error) {
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file decodes to defaults, then fails validation naming the key.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, cleanYAMLError(data, err)
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) setDefaults() {
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.UpstreamTLS == "" {
		c.UpstreamTLS = "disable"
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(30 * time.Second)
	}
	for _, t := range c.Tables {
		if t != nil && t.OnAnonymize == "" {
			t.OnAnonymize = "anonymize"
		}
	}
}

// IsUnmasked reports whether role sees raw data.
func (c *Config) IsUnmasked(role string) bool { return contains(c.Roles.Unmasked, role) }

// MayAnonymize reports whether role may run ANONYMIZE.
func (c *Config) MayAnonymize(role string) bool { return contains(c.Roles.Anonymize, role) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
