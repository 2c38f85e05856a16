package masking

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgveil/pgveil/rules"
)

// catalogTTL bounds how long a resolved relation or function is trusted.
// Catalog changes made by anyone, anywhere, are seen within this time;
// meanwhile the RowDescription cross-check (Origins) still masks plain
// columns of protected tables.
const catalogTTL = 2 * time.Second

// catalogQueryTimeout bounds one catalog read.
const catalogQueryTimeout = 10 * time.Second

// dbCatalog reads one database's catalog through the proxy's own pool and
// caches what it read for catalogTTL. It is safe for concurrent use.
type dbCatalog struct {
	pool  *pgxpool.Pool
	rules *rules.Config
	rels  *ttlCache[string, relResult]
	funcs *ttlCache[string, funcResult]

	origins    atomic.Pointer[originSet] // nil until first loaded
	refreshing atomic.Bool
	temps      *ttlCache[uint32, bool]
}

type relResult struct {
	rel *Relation
	err error
}

type funcResult struct {
	fn  *Function
	err error
}

func newDBCatalog(pool *pgxpool.Pool, cfg *rules.Config) *dbCatalog {
	return &dbCatalog{
		pool:  pool,
		rules: cfg,
		rels:  newTTLCache[string, relResult](4096, catalogTTL),
		funcs: newTTLCache[string, funcResult](4096, catalogTTL),
		temps: newTTLCache[uint32, bool](4096, catalogTTL),
	}
}

// forget drops every cached entry (after the session changed the catalog).
func (c *dbCatalog) forget() {
	c.rels.Purge()
	c.funcs.Purge()
}

// relation resolves name in the first of schemas that has it. When role
// is set (an unqualified name), schemas the role may not use are skipped,
// as the server skips them on its search_path.
func (c *dbCatalog) relation(role string, schemas []string, name string) (*Relation, error) {
	r := cached(c.rels, role, schemas, name, func() relResult {
		rel, err := c.readRelation(role, schemas, name)
		return relResult{rel, err}
	})
	return r.rel, r.err
}

// cached returns the cached result for a name in schemas, reading and
// caching it on a miss.
func cached[V any](cache *ttlCache[string, V], role string, schemas []string, name string, read func() V) V {
	key := role + "\x00" + strings.Join(schemas, "\x00") + "\x00\x00" + name
	if v, ok := cache.Get(key); ok {
		return v
	}
	v := read()
	cache.Add(key, v)
	return v
}

const relationSQL = `
SELECT c.oid, n.nspname, c.relname, c.relkind::text,
       ARRAY(WITH RECURSIVE anc(oid) AS (
               SELECT i.inhparent FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid
               UNION SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN anc ON i.inhrelid = anc.oid)
             SELECT an.nspname || '.' || ac.relname FROM anc
             JOIN pg_catalog.pg_class ac ON ac.oid = anc.oid
             JOIN pg_catalog.pg_namespace an ON an.oid = ac.relnamespace)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = $1 AND n.nspname = ANY($2)
  AND ($3 = '' OR pg_catalog.has_schema_privilege($3, n.oid, 'USAGE'))
ORDER BY array_position($2, n.nspname::text) LIMIT 1`

const columnsSQL = `
SELECT attname, attnum, atttypid FROM pg_catalog.pg_attribute
WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum`

func (c *dbCatalog) readRelation(role string, schemas []string, name string) (*Relation, error) {
	ctx, cancel := context.WithTimeout(context.Background(), catalogQueryTimeout)
	defer cancel()
	var (
		rel       Relation
		kind      string
		ancestors []string
	)
	err := c.pool.QueryRow(ctx, relationSQL, name, schemas, role).Scan(&rel.OID, &rel.Schema, &rel.Name, &kind, &ancestors)
	if err != nil {
		if strings.Contains(err.Error(), "no rows") {
			return nil, nil
		}
		return nil, fmt.Errorf("pgveil: reading the catalog for %s: %w", name, err)
	}
	rel.Kind = kind[0]
	if rel.Kind == 'v' || rel.Kind == 'm' {
		if rel.ViewSQL, err = c.viewDefinition(ctx, rel.OID); err != nil {
			return nil, fmt.Errorf("pgveil: reading the definition of view %s.%s: %w", rel.Schema, rel.Name, err)
		}
	}
	if err := c.readColumns(ctx, &rel); err != nil {
		return nil, err
	}
	return &rel, c.applyRules(&rel, ancestors)
}

// viewDefinition reads a view's definition with every name outside
// pg_catalog schema-qualified: pg_get_viewdef leaves out the schemas on
// its connection's search_path, and the analyser reads the text through
// a path of pg_catalog alone (sessionCatalog.ForViews), whatever the
// session's path is.
func (c *dbCatalog) viewDefinition(ctx context.Context, oid uint32) (string, error) {
	var def string
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL search_path = ''"); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT pg_catalog.pg_get_viewdef($1::pg_catalog.oid)", oid).Scan(&def)
	})
	return def, err
}

func (c *dbCatalog) readColumns(ctx context.Context, rel *Relation) error {
	rows, err := c.pool.Query(ctx, columnsSQL, rel.OID)
	if err != nil {
		return fmt.Errorf("pgveil: reading the columns of %s.%s: %w", rel.Schema, rel.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var col Column
		if err := rows.Scan(&col.Name, &col.Attnum, &col.TypeOID); err != nil {
			return err
		}
		rel.Columns = append(rel.Columns, col)
	}
	return rows.Err()
}

// applyRules marks the PII columns of rel: by its own rules and those of
// every ancestor (partitions and inheritance children carry their parents'
// protection), the nearest declaration of a column winning. A declared
// column the relation lacks (renamed or dropped) fails closed: the relation
// cannot be used until the rules are fixed.
func (c *dbCatalog) applyRules(rel *Relation, ancestors []string) error {
	for _, name := range append([]string{rel.Schema + "." + rel.Name}, ancestors...) {
		t := c.rules.Tables[name]
		if t == nil {
			continue
		}
		for colName, rule := range t.Columns {
			i := columnIndex(rel.Columns, colName)
			if i < 0 {
				return fmt.Errorf("pgveil: the rules protect %s.%s, but %s.%s has no such column; fix the rules (pgveil check)",
					name, colName, rel.Schema, rel.Name)
			}
			if rel.Columns[i].PII == nil {
				rel.Columns[i].PII = rule
				rel.Columns[i].Source = name + "." + colName
			}
		}
	}
	return nil
}

func columnIndex(cols []Column, name string) int {
	for i, c := range cols {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// functionSQL finds the riskiest function of a name on the path: the
// server picks among overloads by argument types, which the analyser does
// not know, so any candidate outside pg_catalog (say a public.upper(varchar)
// created to shadow the built-in for some argument type) is the one
// reported. The last column tells whether every candidate was created by
// initdb (an OID below FirstNormalObjectId, 16384), which no role can fake.
const functionSQL = `
SELECT n.nspname, p.proname, l.lanname, p.provolatile::text, pg_catalog.bool_and(p.oid < 16384) OVER ()
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE p.proname = $1 AND n.nspname = ANY($2)
  AND ($3 = '' OR pg_catalog.has_schema_privilege($3, n.oid, 'USAGE'))
ORDER BY (n.nspname = 'pg_catalog'), (l.lanname IN ('internal', 'c')), array_position($2, n.nspname::text) LIMIT 1`

// function resolves a function name among schemas (see functionSQL and
// relation for role).
func (c *dbCatalog) function(role string, schemas []string, name string) (*Function, error) {
	r := cached(c.funcs, role, schemas, name, func() funcResult {
		fn, err := c.readFunction(role, schemas, name)
		return funcResult{fn, err}
	})
	return r.fn, r.err
}

func (c *dbCatalog) readFunction(role string, schemas []string, name string) (*Function, error) {
	ctx, cancel := context.WithTimeout(context.Background(), catalogQueryTimeout)
	defer cancel()
	var fn Function
	var volatile string
	err := c.pool.QueryRow(ctx, functionSQL, name, schemas, role).Scan(&fn.Schema, &fn.Name, &fn.Language, &volatile, &fn.System)
	if err != nil {
		if strings.Contains(err.Error(), "no rows") {
			return nil, nil
		}
		return nil, fmt.Errorf("pgveil: reading the catalog for function %s: %w", name, err)
	}
	fn.Volatile = volatile[0]
	fn.Allowed = allowed(c.rules.AllowFunctions, fn.Schema, fn.Name)
	return &fn, nil
}

// allowed reports whether the rules allowlist a function, by bare or
// schema-qualified name.
func allowed(list []string, schema, name string) bool {
	for _, a := range list {
		if a == name || a == schema+"."+name {
			return true
		}
	}
	return false
}

// sessionCatalog resolves names for one session: unqualified names
// through the session's search_path.
type sessionCatalog struct {
	db   *dbCatalog
	role string   // the login role, whose schema privileges the path follows
	path []string // schemas to search, pg_catalog first unless placed
}

// schemas returns where a name is looked up, and the role whose USAGE
// privilege filters them ("" for a qualified name).
func (s *sessionCatalog) schemas(schema string) (string, []string) {
	if schema != "" {
		return "", []string{schema}
	}
	return s.role, s.path
}

// Relation implements Catalog.
func (s *sessionCatalog) Relation(schema, name string) (*Relation, error) {
	role, schemas := s.schemas(schema)
	return s.db.relation(role, schemas, name)
}

// ForViews returns the catalog view definitions are read through: names
// as viewDefinition wrote them, unqualified only in pg_catalog.
func (s *sessionCatalog) ForViews() Catalog {
	return &sessionCatalog{db: s.db, path: []string{"pg_catalog"}}
}

// Function implements Catalog.
func (s *sessionCatalog) Function(schema, name string) (*Function, error) {
	role, schemas := s.schemas(schema)
	return s.db.function(role, schemas, name)
}

// origin is a column as RowDescription names it.
type origin struct {
	table  uint32
	attnum int16
}

// originSet maps every protected column of a database, partitions and
// inheritance children included, to its rule and source.
type originSet struct {
	cols   map[origin]protectedCol
	loaded time.Time
}

type protectedCol struct {
	rule   *rules.Column
	source string
}

const originsSQL = `
WITH RECURSIVE t(oid, root) AS (
  SELECT c.oid, n.nspname || '.' || c.relname
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname || '.' || c.relname = ANY($1)
  UNION SELECT i.inhrelid, t.root FROM pg_catalog.pg_inherits i JOIN t ON i.inhparent = t.oid)
SELECT t.oid, t.root, a.attname, a.attnum FROM t
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped`

// protectedColumns returns the protected columns, loading them on first
// use and refreshing them in the background once they are older than
// catalogTTL, so that a caller on an event loop never waits.
func (c *dbCatalog) protectedColumns() *originSet {
	set := c.origins.Load()
	if set == nil {
		c.refreshOrigins()
		return c.origins.Load()
	}
	if time.Since(set.loaded) > catalogTTL && c.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer c.refreshing.Store(false)
			c.refreshOrigins()
		}()
	}
	return set
}

// refreshOrigins reads the protected columns; on failure it keeps the set
// it had (an empty one the first time).
func (c *dbCatalog) refreshOrigins() {
	ctx, cancel := context.WithTimeout(context.Background(), catalogQueryTimeout)
	defer cancel()
	names := make([]string, 0, len(c.rules.Tables))
	for name := range c.rules.Tables {
		names = append(names, name)
	}
	set := &originSet{cols: map[origin]protectedCol{}, loaded: time.Now()}
	rows, err := c.pool.Query(ctx, originsSQL, names)
	if err == nil {
		for rows.Next() {
			var o origin
			var root, col string
			if rows.Scan(&o.table, &root, &col, &o.attnum) != nil {
				continue
			}
			if rule := c.rules.Tables[root].Columns[col]; rule != nil {
				set.cols[o] = protectedCol{rule, root + "." + col}
			}
		}
		rows.Close()
		err = rows.Err()
	}
	if err != nil && c.origins.Load() != nil {
		return
	}
	c.origins.Store(set)
}

// ownRelation reports whether a relation is one the masked session may
// have made itself: temporary, or not yet visible to other sessions (made
// in the session's open transaction). A masked role cannot make a relation
// that holds PII (writing PII and views over it are rejected), which is
// also why name resolution leaves pg_temp out; such columns are exact. A
// lookup that fails answers false, which redacts.
func (c *dbCatalog) ownRelation(oid uint32) bool {
	if t, ok := c.temps.Get(oid); ok {
		return t
	}
	ctx, cancel := context.WithTimeout(context.Background(), catalogQueryTimeout)
	defer cancel()
	var temp bool
	err := c.pool.QueryRow(ctx, "SELECT relpersistence = 't' FROM pg_catalog.pg_class WHERE oid = $1", oid).Scan(&temp)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return true // not committed: the session's own, and not cached (it may commit)
	case err != nil:
		return false
	}
	c.temps.Add(oid, temp)
	return temp
}
