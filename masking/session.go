package masking

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/rules"
)

// planCacheSize is how many analyses the guard keeps, across sessions.
const planCacheSize = 8192

// Guard decides, per session, whether results are masked, and owns what
// masked sessions share: the configuration, one catalog reader per
// database, and the cache of analyses. It is safe for concurrent use.
type Guard struct {
	log     *slog.Logger
	key     []byte   // PGVEIL_PSEUDONYM_KEY
	metrics *Metrics // nil until RegisterMetrics

	mu           sync.Mutex
	cfg          *rules.Config
	gen          uint64               // bumped on every reload: cached plans of older rules are not reused
	dbs          map[string]*Database // by name, kept across reloads (database.go)
	maxDatabases int
	plans        *expirable.LRU[string, cachedPlan] // as fresh as the catalog they read
	texts        *lru.Cache[string, rewrittenText]  // by client text: what the server runs instead
	hits         atomic.Uint64
	misses       atomic.Uint64
	// purges counts the times plans was emptied: a session's recent plan
	// (Session.recent) found before the last purge is not used again.
	purges atomic.Uint64
}

// cachedPlan is an analysis or a rejection.
type cachedPlan struct {
	plan *Plan
	err  error
	rels map[uint32]bool // every relation the analysis resolved, by OID
	at   time.Time       // when it was analysed: it is trusted for catalogTTL
}

// purgePlans empties the plan cache, and with it every session's recent plan.
func (g *Guard) purgePlans() {
	g.purges.Add(1)
	g.plans.Purge()
}

// rewrittenText is the text the server runs for a client's text under one
// plan (rewrite.go).
type rewrittenText struct {
	plan *Plan
	text string
}

// NewGuard creates a guard for cfg. The pseudonym key is read from the
// environment variable PGVEIL_PSEUDONYM_KEY.
func NewGuard(cfg *rules.Config, log *slog.Logger) *Guard {
	plans := expirable.NewLRU[string, cachedPlan](planCacheSize, nil, catalogTTL)
	texts, _ := lru.New[string, rewrittenText](planCacheSize) // fails only for a size <= 0
	return &Guard{log: log, cfg: cfg, dbs: map[string]*Database{}, maxDatabases: maxDatabases, plans: plans,
		texts: texts, key: []byte(os.Getenv("PGVEIL_PSEUDONYM_KEY"))}
}

// Reload swaps the rules. Sessions re-analyse every statement they run
// from now on, statements prepared before the reload included.
func (g *Guard) Reload(cfg *rules.Config) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.cfg = cfg
	g.gen++
	g.purgePlans()
}

// Close closes the guard's database connections.
func (g *Guard) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, d := range g.dbs {
		d.pool.Close()
	}
	g.dbs = map[string]*Database{}
}

// CacheStats returns the analysis cache's hits and misses so far.
func (g *Guard) CacheStats() (hits, misses uint64) { return g.hits.Load(), g.misses.Load() }

// Open starts the policy of a masked session, or returns nil for a role
// that sees raw data. params are the client's startup parameters; exec
// runs a query on the session's own connection.
func (g *Guard) Open(user, database string, params map[string]string, exec func(string) ([][]string, error)) (*Session, error) {
	g.mu.Lock()
	cfg, gen := g.cfg, g.gen
	g.mu.Unlock()
	if cfg.IsUnmasked(user) {
		return nil, nil
	}
	if err := checkStartup(params); err != nil {
		return nil, err
	}
	rows, err := exec("SELECT pg_catalog.current_setting('search_path'), pg_catalog.current_setting('standard_conforming_strings')")
	if err != nil { // wrapped: an upstream lost meanwhile keeps its SQLSTATE (08006)
		return nil, fmt.Errorf("pgveil: cannot read the session's settings: %w", err)
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return nil, fmt.Errorf("pgveil: cannot read the session's settings: %v", err)
	}
	// The analyser reads string literals as the server does only with
	// standard_conforming_strings on (its default since PostgreSQL 9.1).
	if rows[0][1] != "on" {
		return nil, errors.New("pgveil: masked roles need standard_conforming_strings = on")
	}
	d, err := g.UseDatabase(database)
	if err != nil {
		return nil, err
	}
	db := d.catalog(cfg, gen)
	db.protectedColumns() // loaded now, while blocking is allowed
	path, err := searchPath(rows[0][0], user)
	if err != nil {
		return nil, err
	}
	s := newSession(g, user, database, &sessionCatalog{db: db, role: user, path: path}, path)
	s.cfg, s.gen, s.db, s.d = cfg, gen, db, d
	return s, nil
}

// newSession creates a session that resolves names through cat.
func newSession(g *Guard, user, database string, cat Catalog, path []string) *Session {
	return &Session{g: g, cfg: g.cfg, gen: g.gen, user: user, database: database, cat: cat, path: path,
		pathKey: fmt.Sprint(path), cursors: map[string][]Output{}, prepared: map[string][]Output{},
		preparedPath: map[string]string{}, track: newPathTracker(path)}
}

// Session is the masking policy of one masked session. Its methods are
// called one at a time (see proxy.Policy).
type Session struct {
	mu       sync.Mutex // guards cat and gen (and cfg, db) for Warm
	g        *Guard
	cfg      *rules.Config
	gen      uint64
	user     string
	database string
	cat      Catalog
	db       *dbCatalog // the live catalog behind cat; nil in tests
	d        *Database  // the database db reads; nil in tests
	path     []string   // what unqualified names resolve through, as track follows it
	pathKey  string     // path in the plan cache key (guarded by mu for Warm)
	keyBuf   []byte
	track    *pathTracker
	// recent is the plan the session last found in the plan cache.
	recent recentPlan

	// cursors and prepared hold the outputs of every cursor and SQL
	// prepared statement the server confirmed, by name. A name declared
	// again keeps the union of both definitions' masking until it is
	// closed, so a failed redeclaration can never unmask a cursor.
	cursors  map[string][]Output
	prepared map[string][]Output
	// preparedPath is the pathKey each SQL prepared statement was
	// prepared under (see Session.Bindable).
	preparedPath map[string]string

	// last is the masker most recently built, reused while the same
	// statement plan returns rows of the same types and formats.
	last struct {
		st      *StatementPlan
		outs    []Output
		fields  []pgproto3.FieldDescription // types and origins, names left out
		formats []int16
		masker  *RowMasker
		// protected is the set of protected columns the masker was checked against.
		protected *originSet
	}
}

// recentPlan is the plan a session last found in the plan cache, with its
// key, and the text it last analysed with it. A statement sent again and
// again with parameters (the extended protocol's way) skips the key and
// the lookup; one sent again with other literals (the simple protocol's
// way) skips the lookup. Either is used only as long as the cache itself
// would have kept the plan: for catalogTTL after it was analysed, and not
// after a purge.
type recentPlan struct {
	key    []byte
	c      cachedPlan
	purges uint64 // the guard's purges when it was found
	// The last text analysed with c, and its analysis.
	sql, pathKey string
	gen          uint64
	a            *Analysis
}

// fresh reports whether the plan may still be used.
func (r *recentPlan) fresh(g *Guard) bool {
	return len(r.key) > 0 && r.purges == g.purges.Load() && time.Since(r.c.at) < catalogTTL
}

// found remembers a plan found in the cache under key.
func (r *recentPlan) found(key []byte, c cachedPlan, purges uint64) {
	r.key, r.c, r.purges, r.a = append(r.key[:0], key...), c, purges, nil
}

// Analysis is the analysis of one query text for one session, under the
// rules of generation gen.
type Analysis struct {
	plan *Plan
	sql  string
	text string // what the server runs instead of sql, when not ""
	gen  uint64
	rels map[uint32]bool // the relations it resolved (see staleResult)
	// pathKey is the search_path the session had when it analysed sql.
	pathKey string
}

// newAnalysis makes the analysis of sql from its plan, with the text the
// server must run when the plan changes it (rewrite.go). Rewritten texts
// are cached by the client's text, so that a repeated one is not parsed
// again on the proxy's event loop.
func (g *Guard) newAnalysis(plan *Plan, sql string, gen uint64, rels map[uint32]bool) (*Analysis, error) {
	a := &Analysis{plan: plan, sql: sql, gen: gen, rels: rels}
	if len(plan.rewrites) == 0 {
		return a, nil
	}
	if r, ok := g.texts.Get(sql); ok && r.plan == plan {
		a.text = r.text
		return a, nil
	}
	text, err := rewriteText(sql, plan.rewrites)
	if err != nil {
		return nil, err
	}
	g.texts.Add(sql, rewrittenText{plan, text})
	a.text = text
	return a, nil
}

// Text returns the text the server must run in place of the client's, or
// "" when the client's text runs as it is. The plan applies to its
// results either way.
func (a *Analysis) Text() string { return a.text }

// Plan returns the plan of the analysed text. It is shared: do not change it.
func (a *Analysis) Plan() *Plan { return a.plan }

// Statements implements proxy.Query.
func (a *Analysis) Statements() int { return len(a.plan.Statements) }

// Analyze analyses a query text, from the cache when the same text (up to
// its literals) was analysed under the same rules, database and path.
// A rejection is logged and counted (Guard.Rejected).
func (s *Session) Analyze(sql string) (*Analysis, error) {
	a, err, ok := s.cached(sql)
	if !ok {
		s.g.misses.Add(1)
		s.mu.Lock()
		cat, gen := s.cat, s.gen
		s.mu.Unlock()
		a, err = s.analyzeInto(string(s.keyBuf), cat, gen, sql)
	}
	if err == nil {
		err = s.admit(a)
	}
	if err != nil {
		s.g.Rejected(s.user, sql, err)
		return nil, err
	}
	return a, nil
}

// Cached returns the cached analysis of sql; ok is false on a miss. A
// cached rejection is logged and counted (Guard.Rejected).
func (s *Session) Cached(sql string) (a *Analysis, err error, ok bool) {
	a, err, ok = s.cached(sql)
	if ok && err == nil {
		err = s.admit(a)
	}
	if ok && err != nil {
		s.g.Rejected(s.user, sql, err)
		return nil, err, true
	}
	return a, err, ok
}

func (s *Session) cached(sql string) (a *Analysis, err error, ok bool) {
	if err := s.refresh(); err != nil {
		return nil, err, true
	}
	r := &s.recent
	fresh := r.fresh(s.g)
	if fresh && r.a != nil && r.sql == sql && r.gen == s.gen && r.pathKey == s.pathKey {
		s.g.hits.Add(1)
		return r.a, nil, true
	}
	s.keyBuf = s.appendKey(s.keyBuf[:0], s.gen, s.pathKey, sql)
	c := r.c
	if !fresh || !bytes.Equal(s.keyBuf, r.key) {
		purges := s.g.purges.Load() // before the lookup: a purge meanwhile makes it stale
		// The lookup borrows keyBuf's bytes; Get keeps nothing of its key.
		if c, ok = s.g.plans.Get(unsafe.String(unsafe.SliceData(s.keyBuf), len(s.keyBuf))); !ok {
			return nil, nil, false
		}
		r.found(s.keyBuf, c, purges)
	}
	s.g.hits.Add(1)
	if c.err != nil {
		return nil, c.err, true
	}
	if a, err = s.g.newAnalysis(c.plan, sql, s.gen, c.rels); err == nil {
		// Shared by every statement of this text, path and rules: admit
		// sets its pathKey to the one it is keyed by, and current
		// replaces it only under newer rules, for all of them alike.
		r.sql, r.gen, r.pathKey, r.a = sql, s.gen, s.pathKey, a
	}
	return a, err, true
}

// Warm analyses sql into the cache. It may run on another goroutine than
// the session's other methods.
func (s *Session) Warm(sql string) {
	s.mu.Lock()
	cat, gen, pathKey := s.cat, s.gen, s.pathKey
	s.mu.Unlock()
	s.g.misses.Add(1)
	s.analyzeInto(string(s.appendKey(nil, gen, pathKey, sql)), cat, gen, sql)
}

// appendKey appends the plan cache key of sql: what the analysis depends
// on besides the text, then the text without its literals.
func (s *Session) appendKey(dst []byte, gen uint64, pathKey, sql string) []byte {
	dst = append(dst, s.database...)
	dst = append(dst, 0)
	dst = append(dst, s.user...) // rejection messages name the role
	dst = append(dst, 0)
	dst = append(dst, pathKey...)
	dst = append(dst, 0)
	dst = strconv.AppendUint(dst, gen, 10)
	dst = append(dst, 0)
	return CacheKey(dst, sql)
}

// analyzeInto analyses sql and caches the plan or rejection under key.
// Other errors (a catalog read that failed) are not cached.
func (s *Session) analyzeInto(key string, cat Catalog, gen uint64, sql string) (*Analysis, error) {
	rec := &recordingCatalog{Catalog: cat, rels: map[uint32]bool{}}
	plan, err := Analyze(sql, rec, Options{Role: s.user})
	var rej *Rejection
	if err == nil || errors.As(err, &rej) {
		s.g.plans.Add(key, cachedPlan{plan, err, rec.rels, time.Now()})
	}
	if err != nil {
		return nil, err
	}
	return s.g.newAnalysis(plan, sql, gen, rec.rels)
}

// recordingCatalog notes every relation an analysis resolves.
type recordingCatalog struct {
	Catalog
	rels map[uint32]bool
}

// ForViews implements viewCatalog, recording what views read too.
func (r *recordingCatalog) ForViews() Catalog {
	if v, ok := r.Catalog.(viewCatalog); ok {
		return &recordingCatalog{Catalog: v.ForViews(), rels: r.rels}
	}
	return r
}

func (r *recordingCatalog) Relation(schema, name string) (*Relation, error) {
	rel, err := r.Catalog.Relation(schema, name)
	if rel != nil {
		r.rels[rel.OID] = true
	}
	return rel, err
}

// refresh moves the session to the guard's current rules after a reload.
func (s *Session) refresh() error {
	s.g.mu.Lock()
	cfg, gen := s.g.cfg, s.g.gen
	s.g.mu.Unlock()
	if gen == s.gen || s.d == nil {
		return nil
	}
	db := s.d.catalog(cfg, gen)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg, s.gen, s.db = cfg, gen, db
	s.cat = &sessionCatalog{db: db, role: s.user, path: s.path}
	return nil
}

// current re-analyses a statement prepared under older rules. A statement
// the new rules reject can no longer fail where the client sent it, so
// every column of its results is redacted instead.
func (s *Session) current(a *Analysis) *Analysis {
	if s.refresh() != nil || a.gen == s.gen {
		return a
	}
	fresh, err := s.Analyze(a.sql)
	if err != nil {
		redacted := &Output{Sources: []string{"(rejected by the reloaded rules)"}}
		plan := &Plan{Statements: make([]StatementPlan, len(a.plan.Statements))}
		for i := range plan.Statements {
			plan.Statements[i] = StatementPlan{AllColumns: redacted, ReadsPII: true}
		}
		fresh = &Analysis{plan: plan, sql: a.sql, gen: s.gen}
	}
	*a = *fresh
	return a
}

// outputs returns the outputs of statement idx, through the cursor or
// prepared statement it reads.
func (s *Session) outputs(a *Analysis, idx int) (*StatementPlan, []Output) {
	a = s.current(a)
	if idx >= len(a.plan.Statements) {
		return nil, nil
	}
	st := &a.plan.Statements[idx]
	switch {
	case st.Cursor != "" && st.Outputs == nil && st.AllColumns == nil:
		return st, s.cursors[st.Cursor]
	case st.Prepared != "" && st.Outputs == nil && st.AllColumns == nil:
		return st, s.prepared[st.Prepared]
	}
	return st, st.Outputs
}

// Result returns the masker for a result's rows, or nil when every column
// is exact.
func (s *Session) Result(a *Analysis, idx int, fields []pgproto3.FieldDescription, formats []int16) (*RowMasker, error) {
	st, outs := s.outputs(a, idx)
	if st == nil {
		return nil, fmt.Errorf("pgveil: result for statement %d of a %d-statement query", idx+1, len(a.plan.Statements))
	}
	var protected *originSet
	if s.db != nil {
		protected = s.db.protectedColumns()
	}
	if s.sameShape(st, outs, fields, formats) && s.last.protected == protected {
		return s.last.masker, nil
	}
	cols := columnOutputs(st, outs, fields)
	markProtected(cols, fields, protected)
	if s.staleResult(a, st, fields) {
		for i := range cols {
			cols[i] = Output{Sources: []string{"(a name now points at another relation)"}}
		}
	}
	types := make([]uint32, len(fields))
	for i, f := range fields {
		types[i] = f.DataTypeOID
	}
	m := NewRowMasker(cols, types, formats, s.g.key)
	m.count(s.g.metrics, cols)
	s.last.st, s.last.outs, s.last.masker, s.last.protected = st, outs, m, protected
	s.last.formats = append(s.last.formats[:0], formats...)
	s.last.fields = s.last.fields[:0]
	for _, f := range fields {
		s.last.fields = append(s.last.fields, pgproto3.FieldDescription{DataTypeOID: f.DataTypeOID,
			TableOID: f.TableOID, TableAttributeNumber: f.TableAttributeNumber})
	}
	return m, nil
}

// sameShape reports whether the last masker fits this result too: the
// same plan, outputs, formats, and column types and origins.
func (s *Session) sameShape(st *StatementPlan, outs []Output, fields []pgproto3.FieldDescription, formats []int16) bool {
	l := &s.last
	if l.st != st || len(l.fields) != len(fields) || !slices.Equal(l.formats, formats) ||
		len(l.outs) != len(outs) || (len(outs) > 0 && &l.outs[0] != &outs[0]) {
		return false
	}
	for i, f := range fields {
		g := l.fields[i]
		if g.DataTypeOID != f.DataTypeOID || g.TableOID != f.TableOID || g.TableAttributeNumber != f.TableAttributeNumber {
			return false
		}
	}
	return true
}

// columnOutputs lines the plan's outputs up with the columns the server
// reports, and fails closed where they disagree: a column whose origin is
// a protected column is masked whatever the plan says, and when the
// column counts differ every column of a statement that reads PII is
// redacted.
func columnOutputs(st *StatementPlan, outs []Output, fields []pgproto3.FieldDescription) []Output {
	cols := make([]Output, len(fields))
	for i := range fields {
		switch {
		case st.AllColumns != nil:
			cols[i] = *st.AllColumns
			cols[i].Plain = false
		case len(outs) == len(fields):
			cols[i] = outs[i]
		case st.ReadsPII:
			cols[i] = Output{Sources: []string{"(result shape differs from the analysis)"}}
		}
		if o := originOf(st.Origins, fields[i]); o != nil && !cols[i].Masked() {
			cols[i] = Output{Sources: o.Sources}
		}
	}
	return cols
}

// staleResult reports whether the server's columns come from a relation
// the analysis never resolved: a name now points at something else (a table
// replaced by a view, say) and the cached plan is stale. Its caches are
// dropped, and the caller redacts the whole result. FETCH and EXECUTE read
// relations their own text does not name, and are left to their cursor's
// or statement's analysis.
func (s *Session) staleResult(a *Analysis, st *StatementPlan, fields []pgproto3.FieldDescription) bool {
	if a.rels == nil || st.Cursor != "" || st.Prepared != "" {
		return false
	}
	for _, f := range fields {
		if f.TableOID != 0 && !a.rels[f.TableOID] && !(s.db != nil && s.db.ownRelation(f.TableOID)) {
			s.g.purgePlans()
			if s.db != nil {
				s.db.forget()
			}
			return true
		}
	}
	return false
}

// markProtected masks every column whose RowDescription origin is a
// protected column of the database, whatever the plan says: a plan cached
// before someone else's DDL may be stale, the database-wide set is not.
func markProtected(cols []Output, fields []pgproto3.FieldDescription, set *originSet) {
	if set == nil {
		return
	}
	for i, f := range fields {
		if f.TableOID == 0 || cols[i].Masked() {
			continue
		}
		if p, ok := set.cols[origin{f.TableOID, int16(f.TableAttributeNumber)}]; ok {
			cols[i] = Output{Sources: []string{p.source}, Plain: true, Strategy: p.rule.Mask}
		}
	}
}

func originOf(origins []Origin, f pgproto3.FieldDescription) *Origin {
	for i := range origins {
		if origins[i].Table == f.TableOID && origins[i].Attnum == int16(f.TableAttributeNumber) {
			return &origins[i]
		}
	}
	return nil
}

// CopyResult returns the masker for a COPY TO STDOUT, or nil.
func (s *Session) CopyResult(a *Analysis, idx int) (*CopyMasker, error) {
	st, outs := s.outputs(a, idx)
	if st == nil || st.Copy == nil {
		if st != nil && st.ReadsPII {
			return nil, errors.New("pgveil: COPY result without a known format for a statement that reads PII")
		}
		return nil, nil
	}
	masked := false
	for _, o := range outs {
		masked = masked || o.Masked()
	}
	if !masked {
		return nil, nil
	}
	types := make([]uint32, len(outs))
	for i, o := range outs {
		types[i] = s.columnType(o)
	}
	rows := NewRowMasker(outs, types, nil, s.g.key)
	rows.count(s.g.metrics, outs)
	return &CopyMasker{rows: rows, format: st.Copy}, nil
}

// CopyMasker masks the rows of one COPY TO STDOUT.
type CopyMasker struct {
	rows   *RowMasker
	format *CopyFormat
}

// CopyLine masks one COPY data row.
func (c *CopyMasker) CopyLine(dst, line []byte) ([]byte, error) {
	return c.rows.MaskCopyLine(dst, line, c.format)
}

// Flush adds the values masked so far to the metrics (see RowMasker.Flush).
func (c *CopyMasker) Flush() { c.rows.Flush() }

// Completed tracks the cursors and prepared statements the server now has.
func (s *Session) Completed(a *Analysis, idx int) Names {
	if idx >= len(a.plan.Statements) {
		return Names{}
	}
	st := &a.plan.Statements[idx]
	s.completedPath(a, st, idx)
	if st.ChangesCatalog {
		s.g.purgePlans() // plans read the catalog this statement changed
		if s.db != nil {
			s.db.forget()
		}
	}
	switch st.Tag {
	case "DECLARE CURSOR":
		s.cursors[st.Cursor] = union(s.cursors[st.Cursor], st.Outputs)
		return Names{Portals: []string{st.Cursor}}
	case "PREPARE":
		s.prepared[st.Prepared] = union(s.prepared[st.Prepared], st.Outputs)
		s.preparedPath[st.Prepared] = a.pathKey
		return Names{Statements: []string{st.Prepared}}
	case "CLOSE CURSOR":
		delete(s.cursors, st.Cursor)
		return Names{Portals: []string{st.Cursor}}
	case "DEALLOCATE":
		delete(s.prepared, st.Prepared)
		delete(s.preparedPath, st.Prepared)
		return Names{Statements: []string{st.Prepared}}
	case "CLOSE CURSOR ALL":
		clear(s.cursors)
		return Names{AllPortals: true}
	case "DEALLOCATE ALL":
		clear(s.prepared)
		clear(s.preparedPath)
		return Names{AllStatements: true}
	case "DISCARD ALL":
		clear(s.cursors)
		clear(s.prepared)
		clear(s.preparedPath)
		return Names{AllPortals: true, AllStatements: true}
	}
	return Names{}
}

// Names are cursor (portal) and prepared statement names a statement
// defined or dropped.
type Names struct {
	Portals, Statements       []string
	AllPortals, AllStatements bool
}

// Forget drops what the session knows of names the client (re)defined or
// closed through the protocol: SQL cursors share their namespace with
// protocol portals, SQL prepared statements with protocol ones. A FETCH or
// EXECUTE of a name the session does not know withholds every value.
func (s *Session) Forget(n Names) {
	if n.AllPortals {
		clear(s.cursors)
	}
	if n.AllStatements {
		clear(s.prepared)
	}
	for _, name := range n.Portals {
		delete(s.cursors, name)
	}
	for _, name := range n.Statements {
		delete(s.prepared, name)
		delete(s.preparedPath, name)
	}
}

// union keeps, per column, the stricter of two definitions of one name.
// Definitions of different widths make every column redacted.
func union(old, new []Output) []Output {
	if old == nil {
		return new
	}
	if len(old) != len(new) {
		out := make([]Output, max(len(old), len(new)))
		for i := range out {
			out[i] = Output{Sources: []string{"(redefined with another shape)"}}
		}
		return out
	}
	out := make([]Output, len(new))
	for i := range new {
		out[i] = new[i]
		if old[i].Masked() && (!new[i].Masked() || new[i].Plain != old[i].Plain) {
			out[i] = Output{Sources: old[i].Sources}
		}
	}
	return out
}

// ScrubErrors reports whether errors of statement idx may quote PII.
func (s *Session) ScrubErrors(a *Analysis, idx int) bool {
	return idx < len(a.plan.Statements) && a.plan.Statements[idx].ReadsPII
}

// identitySettings are the settings a masked login may not give in its
// startup options: they would change who it is or what a name means.
var identitySettings = []string{"role", "session_authorization", "standard_conforming_strings", "default_transaction_read_only"}

// checkStartup refuses a masked login's replication connections and
// startup settings that change its identity or name resolution.
func checkStartup(params map[string]string) error {
	if r := params["replication"]; r != "" && r != "false" && r != "off" && r != "no" && r != "0" {
		return &Rejection{Construct: "a replication connection", Message: "pgveil: masked roles may not open replication connections"}
	}
	for key, value := range params {
		if kind, refused := startupRefusal(key); refused {
			return &Rejection{Kind: kind, Message: fmt.Sprintf("pgveil: masked roles may not set %s at connection start", key)}
		}
		if key != "options" {
			continue
		}
		for _, name := range optionNames {
			if optionSets(value, name) {
				kind, _ := startupRefusal(name)
				return &Rejection{Kind: kind, Message: fmt.Sprintf("pgveil: masked roles may not set %s in the startup options", name)}
			}
		}
	}
	return nil
}

// optionNames are what a masked login's startup options may not set;
// "enable_" stands for every enable_* setting.
var optionNames = slices.Concat(identitySettings, planSettings, []string{"enable_"})

// startupRefusal reports whether a masked login may not set a setting at
// connection start, and the rule it would break.
func startupRefusal(name string) (kind string, refused bool) {
	switch {
	case steersPlan(name):
		return ReasonOracle, true
	case settingNamed(name, identitySettings):
		return ReasonIdentity, true
	}
	return "", false
}

func settingNamed(key string, names []string) bool {
	return slices.Contains(names, strings.ToLower(key))
}

// optionSets reports whether a startup options string (-c name=value or
// --name=value, possibly with - for _) sets the setting name. It errs on
// the side of finding it.
func optionSets(options, name string) bool {
	o := strings.ToLower(strings.ReplaceAll(options, "-", "_"))
	return strings.Contains(o, name)
}

// Config returns the rules in force.
func (g *Guard) Config() *rules.Config {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg
}

// Database returns the session's database (nil for a session made in tests).
func (s *Session) Database() *Database { return s.d }

// Close releases the session's database. Call it once, when the session ends.
func (s *Session) Close() {
	if s.d != nil {
		s.d.Release()
	}
}

// SearchPath returns the schemas the session resolves names in.
func (s *Session) SearchPath() []string { return s.path }

// columnType is the type of a plain PII output, from the catalog (the
// analysis just read it, so it is cached); 0 when unknown, which masks to
// NULL, a value every type allows.
func (s *Session) columnType(o Output) uint32 {
	if !o.Plain || len(o.Sources) != 1 {
		return 0
	}
	parts := strings.Split(o.Sources[0], ".")
	if len(parts) != 3 {
		return 0
	}
	rel, err := s.cat.Relation(parts[0], parts[1])
	if err != nil || rel == nil {
		return 0
	}
	if i := columnIndex(rel.Columns, parts[2]); i >= 0 {
		return rel.Columns[i].TypeOID
	}
	return 0
}
