package masking

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/pgveil/pgveil/rules"
)

// TestDatabasesBounded: databases nobody holds are closed, the least
// recently used first, beyond maxDatabases or after databaseIdle; a held
// one never is. The pools connect lazily, so no server is needed to count
// them (the cmd/pgveil tests use real databases).
func TestDatabasesBounded(t *testing.T) {
	cfg := &rules.Config{AdminDSN: "host=127.0.0.1 port=1 user=nobody"}
	g := NewGuard(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer g.Close()
	g.maxDatabases = 2
	use := func(name string) *Database {
		d, err := g.UseDatabase(name)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	want := func(names ...string) {
		t.Helper()
		if got := g.OpenDatabases(); !slices.Equal(got, names) {
			t.Fatalf("open databases %q, want %q", got, names)
		}
	}
	a, b := use("a"), use("b")
	a.Release()
	c := use("c") // a is the least recently used, and nobody holds it
	want("b", "c")
	d := use("d") // b and c are held: over the bound rather than closing them
	want("b", "c", "d")
	c.Release()
	d.Release()
	b.Release()
	b = use("b") // held again; c, the least recently used, goes
	want("b", "d")
	g.mu.Lock()
	g.dbs["d"].lastUsed = time.Now().Add(-databaseIdle - time.Second)
	g.mu.Unlock()
	b.Release()
	use("b").Release() // d has been idle too long
	want("b")
}

// TestTableOfAndCascade: a problem's key names its table, the longest
// declared name that fits; a table's cascade follows the parent links.
func TestTableOfAndCascade(t *testing.T) {
	cfg, err := rules.Parse([]byte(`listen: a:1
upstream: a:1
tables:
  public.c:
    key: id
    columns: {email: {mask: email}}
  public.c.x:
    key: id
    parent: {table: public.c, via: c_id}
    columns: {note: {mask: redact}}
  public.y:
    key: id
    parent: {table: public.c.x, via: x_id}
    columns: {note: {mask: redact}}
  public.z:
    key: id
    columns: {note: {mask: redact}}
databases:
  crm:
    tables:
      public.d:
        key: id
        columns: {email: {mask: email}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"tables.public.c.key":                      "public.c",
		"tables.public.c.x.columns.note":           "public.c.x",
		"roles.anonymize.dpo":                      "",
		"tables.public.q":                          "",
		"databases.crm.tables.public.d.columns.em": "",
	} {
		if got := tableOf(cfg, key); got != want {
			t.Errorf("tableOf(%q) = %q, want %q", key, got, want)
		}
	}
	if got := tableOf(cfg.ForDatabase("crm"), "databases.crm.tables.public.d.key"); got != "public.d" {
		t.Errorf("tableOf in crm: %q", got)
	}
	if got := cascade(cfg, "public.c"); !slices.Equal(got, []string{"public.c", "public.c.x", "public.y"}) {
		t.Errorf("cascade of public.c: %q", got)
	}
	if got := cascade(cfg, "public.z"); !slices.Equal(got, []string{"public.z"}) {
		t.Errorf("cascade of public.z: %q", got)
	}
}
