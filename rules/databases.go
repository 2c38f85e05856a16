package rules

import (
	"go.yaml.in/yaml/v3"
)

// Database is one database's own rules, under databases: in the file. Its
// tables replace the top-level tables in that database, as a database
// entry of PgBouncer's [databases] replaces the defaults.
type Database struct {
	Tables map[string]*Table `yaml:"tables"`
}

// AuditConfig is audit_config: false, true (pgveil.config_log lives in the
// database the admin connection names), or the name of that database.
type AuditConfig struct {
	Enabled  bool
	Database string // "" for true: the admin connection's database
}

// UnmarshalYAML reads a boolean or a database name.
func (a *AuditConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		return nodeError(n, "true, false, or the name of the database that holds pgveil.config_log")
	}
	if n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err != nil {
			return nodeError(n, "%q is not true or false", n.Value)
		}
		*a = AuditConfig{Enabled: b}
		return nil
	}
	*a = AuditConfig{Enabled: true, Database: n.Value}
	return nil
}

// ForDatabase returns the rules of one database: a view of c whose Tables
// are the database's own when databases: names it, the top-level tables
// otherwise. Every other setting is c's. The views are built once, when
// the file is parsed; do not change them.
func (c *Config) ForDatabase(name string) *Config {
	if v := c.views[name]; v != nil {
		return v
	}
	return c
}

// DatabaseNames lists the databases that databases: names, sorted.
func (c *Config) DatabaseNames() []string { return sortedKeys(c.Databases) }

// Scope is the database whose own rules c is ("" for the top-level ones).
func (c *Config) Scope() string { return c.scope }

// HasTables reports whether any database has rules: the top-level tables
// or those of a database under databases:.
func (c *Config) HasTables() bool {
	if len(c.Tables) > 0 {
		return true
	}
	for _, d := range c.Databases {
		if d != nil && len(d.Tables) > 0 {
			return true
		}
	}
	return false
}

// tablesKey is the key path of c's tables in the file: tables, or
// databases.NAME.tables for a database's own.
func (c *Config) tablesKey() string {
	if c.scope == "" {
		return "tables"
	}
	return "databases." + c.scope + ".tables"
}

// scoped turns the keys of problems found with a database's view
// ("tables.public.x...") into the keys of the file
// ("databases.crm.tables.public.x...").
func (c *Config) scoped(problems []Problem) {
	if c.scope == "" {
		return
	}
	for i := range problems {
		if k := problems[i].Key; len(k) >= len("tables") && k[:len("tables")] == "tables" {
			problems[i].Key = c.tablesKey() + k[len("tables"):]
		}
	}
}

// buildViews makes the view of every database under databases:.
func (c *Config) buildViews() {
	c.views = map[string]*Config{}
	for name, d := range c.Databases {
		v := *c
		v.Databases, v.views, v.scope, v.Tables = nil, nil, name, nil
		if d != nil {
			v.Tables = d.Tables
		}
		c.views[name] = &v
	}
}

// validateDatabases checks each database's own tables, under their key path.
func (c *Config) validateDatabases(add func(string, string, ...any)) {
	for _, name := range sortedKeys(c.Databases) {
		if name == "" {
			add("databases", "a database name is empty")
			continue
		}
		if c.Databases[name] == nil {
			add("databases."+name, "empty database entry (write tables: {} for a database without protected tables)")
			continue
		}
		v := c.views[name]
		for _, t := range sortedKeys(v.Tables) {
			v.validateTable(add, t, v.Tables[t])
		}
	}
}

// diffDatabases lists the changes of the tables of each database under
// databases:, by database name. A database added or removed under
// databases: lists its tables as added or removed.
func diffDatabases(old, new *Config) []Change {
	var out []Change
	for _, db := range unionKeys(old.Databases, new.Databases) {
		o, n := databaseTables(old, db), databaseTables(new, db)
		for _, name := range unionKeys(o, n) {
			for _, c := range diffTable(name, o[name], n[name]) {
				c.Database = db
				out = append(out, c)
			}
		}
	}
	return out
}

func databaseTables(c *Config, db string) map[string]*Table {
	if d := c.Databases[db]; d != nil {
		return d.Tables
	}
	return nil
}
