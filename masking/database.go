package masking

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgveil/pgveil/anonymize"
	"github.com/pgveil/pgveil/rules"
)

// Bounds of the guard's own connections. A database's pool holds at most
// poolConns connections, each closed after poolIdle unused; a database no
// session uses is closed after databaseIdle, or sooner when more than
// maxDatabases are open (the least recently used first).
const (
	poolConns    = 4
	poolIdle     = time.Minute
	databaseIdle = 5 * time.Minute
	maxDatabases = 64
)

// prepareTimeout bounds the check of the rules and the creation of the
// audit log in one database.
const prepareTimeout = 30 * time.Second

// Database is what the guard keeps for one database: the proxy's own pool
// to it (admin_dsn or the libpq environment for the server and role, the
// session's database), its catalog reader, what rules.Check found there,
// and whether its audit log is ready. A session holds it from Open (or
// Guard.UseDatabase) until Release; a database no session holds may be
// closed.
//
// The rules of a database are Config.ForDatabase of its name.
type Database struct {
	g    *Guard
	name string
	pool *pgxpool.Pool

	// Guarded by g.mu.
	sessions int       // holders: sessions between use and release
	lastUsed time.Time // when the last holder came or went
	cat      *dbCatalog
	catGen   uint64 // the rules generation cat reads with

	// mu serialises checking the rules and creating the audit log, which
	// talk to the database; the fields below are guarded by it.
	mu       sync.Mutex
	checked  bool // refused is for the rules of checkGen
	checkGen uint64
	refused  map[string][]rules.Problem // by table of the rules: check's errors
	checkErr error                      // the check could not run
	audit    bool                       // the audit log exists, with the grants of auditFor
	auditFor []string                   // the roles.anonymize it was prepared for
}

// Name is the database's name.
func (d *Database) Name() string { return d.name }

// UseDatabase returns the database's state, connecting on first use and
// checking the rules there when they were not checked since the last
// reload. The caller must Release it.
func (g *Guard) UseDatabase(name string) (*Database, error) {
	d, err := g.use(name)
	if err != nil {
		return nil, err
	}
	d.prepare()
	return d, nil
}

// use finds or opens the database and counts the caller as a holder.
func (g *Guard) use(name string) (*Database, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := g.dbs[name]
	if d == nil {
		pool, err := g.connect(g.cfg, name)
		if err != nil {
			return nil, err
		}
		d = &Database{g: g, name: name, pool: pool}
		g.dbs[name] = d
	}
	d.sessions++
	d.lastUsed = time.Now()
	g.closeIdle(d.lastUsed)
	return d, nil
}

// Release says the holder is done with the database.
func (d *Database) Release() {
	d.g.mu.Lock()
	defer d.g.mu.Unlock()
	d.sessions--
	d.lastUsed = time.Now()
}

// closeIdle closes the databases no session holds that have been idle
// for databaseIdle, and then, while more than maxDatabases are open, the
// least recently used one nobody holds. g.mu is held.
func (g *Guard) closeIdle(now time.Time) {
	var idle []*Database
	for _, d := range g.dbs {
		if d.sessions == 0 {
			idle = append(idle, d)
		}
	}
	slices.SortFunc(idle, func(a, b *Database) int { return a.lastUsed.Compare(b.lastUsed) })
	open := len(g.dbs)
	for _, d := range idle {
		if open <= g.maxDatabases && now.Sub(d.lastUsed) < databaseIdle {
			break
		}
		delete(g.dbs, d.name)
		open--
		go d.pool.Close() // waits for a background catalog refresh to end
	}
}

// DatabaseCounts returns how many databases the guard has open, and how
// many of them sessions hold (for metrics).
func (g *Guard) DatabaseCounts() (open, held int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, d := range g.dbs {
		if d.sessions > 0 {
			held++
		}
	}
	return len(g.dbs), held
}

// OpenDatabases lists the databases the guard has open, sorted.
func (g *Guard) OpenDatabases() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	names := make([]string, 0, len(g.dbs))
	for name := range g.dbs {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// connect opens the proxy's own pool to a database: admin_dsn when given,
// else the libpq environment, with the upstream as the default host. The
// database is always the one asked for, whatever they name.
func (g *Guard) connect(cfg *rules.Config, database string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.AdminDSN)
	if err != nil {
		return nil, fmt.Errorf("pgveil: admin_dsn: %w", err)
	}
	if cfg.AdminDSN == "" && os.Getenv("PGHOST") == "" {
		host, port, _ := net.SplitHostPort(cfg.Upstream)
		pc.ConnConfig.Host = host
		fmt.Sscan(port, &pc.ConnConfig.Port)
	}
	pc.ConnConfig.Database = database
	pc.MaxConns = poolConns
	pc.MinConns = 0
	pc.MaxConnIdleTime = poolIdle
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("pgveil: connecting to read the catalog of %s: %w", database, err)
	}
	return pool, nil
}

// catalog returns the database's catalog reader for the rules of gen.
func (d *Database) catalog(cfg *rules.Config, gen uint64) *dbCatalog {
	g := d.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if d.cat != nil && d.catGen == gen {
		return d.cat
	}
	c := newDBCatalog(d.pool, cfg.ForDatabase(d.name))
	if g.gen == gen {
		d.cat, d.catGen = c, gen
	}
	return c
}

// prepare checks the rules in the database unless they were checked since
// the last reload, and logs each error once.
func (d *Database) prepare() {
	cfg, gen := d.g.current()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.checked && d.checkGen == gen {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	defer cancel()
	view := cfg.ForDatabase(d.name)
	problems, err := d.check(ctx, view)
	d.checked, d.checkGen, d.checkErr, d.refused = err == nil, gen, err, map[string][]rules.Problem{}
	if err != nil { // tried again by the next holder
		d.g.log.Error("cannot check the rules in the database; ANONYMIZE is refused there until they can be",
			"database", d.name, "err", err)
		return
	}
	errs := 0
	for _, p := range problems {
		if p.Warning {
			continue
		}
		errs++
		d.g.log.Error("the rules do not fit the database; ANONYMIZE of the table is refused until they do (pgveil check)",
			"database", d.name, "problem", p.String())
		if t := tableOf(view, p.Key); t != "" {
			d.refused[t] = append(d.refused[t], p)
		}
	}
	d.g.log.Info("rules checked", "database", d.name, "tables", len(view.Tables), "errors", errs)
}

// check runs rules.Check on one of the pool's connections.
func (d *Database) check(ctx context.Context, cfg *rules.Config) ([]rules.Problem, error) {
	if len(cfg.Tables) == 0 {
		return nil, nil
	}
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	return rules.Check(ctx, cfg, conn.Conn())
}

// tableOf is the table of the rules a problem's key is about
// ("tables.public.x.key" or "databases.crm.tables.public.x.key": public.x),
// or "" when it is about no table. Names hold dots, so the longest
// declared name that fits wins.
func tableOf(cfg *rules.Config, key string) string {
	_, rest, ok := strings.Cut(key, "tables.")
	if !ok {
		return ""
	}
	best := ""
	for name := range cfg.Tables {
		if (rest == name || strings.HasPrefix(rest, name+".")) && len(name) > len(best) {
			best = name
		}
	}
	return best
}

// Refusal returns why ANONYMIZE of table may not run in the database: the
// errors check found on the table or a table its anonymization cascades
// to, in check's own words, or that the rules could not be checked; nil
// when it may run.
func (d *Database) Refusal(table string) error {
	d.prepare()
	cfg, _ := d.g.current()
	view := cfg.ForDatabase(d.name)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.checkErr != nil {
		return fmt.Errorf("pgveil: ANONYMIZE is refused in database %s: the rules could not be checked there (%v); see the proxy's log", d.name, d.checkErr)
	}
	var msgs []string
	for _, t := range cascade(view, table) {
		for _, p := range d.refused[t] {
			msgs = append(msgs, p.String())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("pgveil: ANONYMIZE %s is refused: the rules do not fit database %s (see pgveil check --database %s): %s",
		table, d.name, d.name, strings.Join(msgs, "; "))
}

// cascade lists table and every table whose parent links lead to it.
func cascade(cfg *rules.Config, table string) []string {
	out := []string{table}
	for name := range cfg.Tables {
		for t, seen := cfg.Tables[name], 0; t != nil && t.Parent != nil && seen <= len(cfg.Tables); seen++ {
			if t.Parent.Table == table {
				out = append(out, name)
				break
			}
			t = cfg.Tables[t.Parent.Table]
		}
	}
	slices.Sort(out[1:])
	return out
}

// AuditLog makes sure the database has the ANONYMIZE audit log, creating
// it (and granting INSERT to roles) with the proxy's own connection the
// first time. When it cannot, the error says why and what to run.
func (d *Database) AuditLog(roles []string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.audit && slices.Equal(d.auditFor, roles) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), prepareTimeout)
	defer cancel()
	if err := anonymize.EnsureAuditLog(ctx, d.pool, roles); err != nil {
		d.g.log.Error("cannot create the ANONYMIZE audit log; ANONYMIZE fails in the database until it exists",
			"database", d.name, "table", anonymize.AuditTable, "err", err)
		return fmt.Errorf("pgveil: ANONYMIZE cannot run in database %s: the audit log %s is not ready and the proxy's own connection could not create it: %v; "+
			"run pgveil anonymize --init-audit --database %s as a role that may create a schema there, or let the proxy's role do so",
			d.name, anonymize.AuditTable, err, d.name)
	}
	d.audit, d.auditFor = true, slices.Clone(roles)
	return nil
}

// current returns the rules in force and their generation.
func (g *Guard) current() (*rules.Config, uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cfg, g.gen
}
