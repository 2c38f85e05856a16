package rules

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/scan"
)

// PseudonymKeyEnv is the environment variable holding the HMAC key of the
// pseudonym strategy.
const PseudonymKeyEnv = "PGVEIL_PSEUDONYM_KEY"

// Problem is one way the rules do not fit the live database.
type Problem struct {
	Key     string // the configuration key, e.g. tables.public.customers.columns.email.mask
	Message string
	// Warning marks a problem the rules work despite (a role that may be
	// created later, a parent link without a foreign key). Anything else is
	// an error: the proxy or ANONYMIZE would fail, or protect less than the
	// rules say.
	Warning bool
	File    string // the configuration file (Config.Path); "" leaves the prefix out
}

// String gives the problem as "file: key: message", with "warning: " before
// the message of a warning.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File + ": ")
	}
	b.WriteString(p.Key + ": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Check validates cfg against the catalog of the database conn is connected
// to, and returns every problem it finds, sorted by key. It reads
// pg_catalog only. err is set when the catalog cannot be read; problems is
// then nil.
//
// What it checks:
//   - every declared table exists and is a table, partitioned table,
//     foreign table or materialized view (not a view), and has every
//     declared column;
//   - each mask strategy fits its column's type: generalize needs date,
//     timestamp or timestamptz; partial, email, pseudonym, blank and text:
//     need a text type (text, varchar, char, name, citext, or a domain over
//     one); redact and nullify fit every type. pseudonym needs
//     PGVEIL_PSEUDONYM_KEY in the environment of this process;
//   - each anonymize strategy can be written: random_email, blank and text:
//     need a text type; a strategy that writes NULL (nullify, redact on a
//     non-text type) is refused on a NOT NULL column; a strategy that writes
//     one fixed value to every row (redact on text, blank, text:) is refused
//     on a column of a unique constraint or index; a text: or redact value
//     longer than a varchar(n) or char(n) column allows is refused; nothing
//     is written to a materialized view;
//   - the key exists and a primary key, unique constraint or unique index
//     covers it alone; the anonymized_marker exists and is a timestamp,
//     timestamptz or boolean (ANONYMIZE sets it to now() or true);
//   - parent.table is declared and exists, parent.via exists, and a foreign
//     key links via to the parent's key (a warning when none does);
//   - keys are never anonymized: no anonymize strategy on the table's key,
//     parent.via, the anonymized_marker, or a column a foreign key uses or
//     references;
//   - on_anonymize: delete only on a table with a parent;
//   - a declared partition or inheritance child protects at least the
//     columns its nearest declared ancestor protects (its own rules replace
//     the ancestor's when it is read directly);
//   - the roles under roles exist and can log in (warnings: they may be
//     created later);
//   - a masked copy restores (warnings, check_copy.go): no mask that gives
//     every row one value (redact, blank, text:, nullify) on all the
//     columns of a primary key, unique constraint or unique index
//     (pseudonym keeps them unique), and no mask that gives NULL on a NOT
//     NULL column;
//   - every column of a declared table whose name suggests personal data
//     (scan.MatchName: email, telefon, fornavn, ...) has a rule (a warning:
//     drift, such as a column added since the rules were written).
func Check(ctx context.Context, cfg *Config, conn *pgx.Conn) (problems []Problem, err error) {
	c := &checker{ctx: ctx, cfg: cfg, conn: conn, rels: make(map[string]*relation)}
	if err := c.run(); err != nil {
		return nil, err
	}
	for i := range c.problems {
		c.problems[i].File = cfg.Path
	}
	cfg.scoped(c.problems)
	sort.SliceStable(c.problems, func(i, j int) bool {
		a, b := c.problems[i], c.problems[j]
		if a.Key != b.Key {
			return a.Key < b.Key
		}
		return a.Message < b.Message
	})
	return c.problems, nil
}

// checker holds the state of one Check.
type checker struct {
	ctx      context.Context
	cfg      *Config
	conn     *pgx.Conn
	rels     map[string]*relation // declared name -> relation; nil when it is missing
	problems []Problem
}

func (c *checker) errorf(key, format string, a ...any) {
	c.problems = append(c.problems, Problem{Key: key, Message: fmt.Sprintf(format, a...)})
}

func (c *checker) warnf(key, format string, a ...any) {
	c.problems = append(c.problems, Problem{Key: key, Message: fmt.Sprintf(format, a...), Warning: true})
}

func (c *checker) run() error {
	names := sortedKeys(c.cfg.Tables)
	for _, name := range names {
		rel, err := c.loadRelation(name)
		if err != nil {
			return err
		}
		c.rels[name] = rel
	}
	for _, name := range names {
		t := c.cfg.Tables[name]
		if t == nil {
			continue // reported by validate
		}
		key := "tables." + name
		rel := c.rels[name]
		c.checkTable(key, name, t, rel)
		c.checkParent(key, name, t, rel)
		if t.OnAnonymize == "delete" && t.Parent == nil {
			c.errorf(key+".on_anonymize", "delete needs a parent: ANONYMIZE deletes the rows of a child table that point at the anonymized parent row; declare parent: {table: ..., via: ...}")
		}
	}
	return c.checkRoles()
}

// checkKey checks that the key's columns exist and that one unique
// constraint or index makes them unique together.
func (c *checker) checkKey(key, name string, cols Columns, rel *relation) {
	if len(cols) == 0 {
		return
	}
	nums, missing := rel.nums(cols)
	if missing != "" {
		c.errorf(key, "no such column %s in %s", missing, name)
		return
	}
	if rel.uniqueWithin(nums) != nil {
		return
	}
	alone := ""
	if len(cols) == 1 {
		alone = " by itself"
	}
	c.errorf(key, "%s is not unique%s: no primary key, unique constraint or unique index covers %s alone%s; ANONYMIZE needs it to name exactly one row",
		cols, alone, cols.Tuple(), rel.coveringHint(nums))
}

// checkTable checks that the table exists and that its key, marker and
// columns fit it.
func (c *checker) checkTable(key, name string, t *Table, rel *relation) {
	if rel == nil {
		c.errorf(key, "no such table in the database%s", c.suggestTable(name))
		return
	}
	switch rel.kind {
	case 'r', 'p', 'f', 'm':
	case 'v':
		c.errorf(key, "%s is a view; views may not be declared: declare the tables it reads (masking follows views to their tables)", name)
		return
	default:
		c.errorf(key, "%s is a %s, not a table", name, relkindName(rel.kind))
		return
	}
	c.checkAncestors(key, name, t, rel)
	var marker *attribute
	c.checkKey(key+".key", name, t.Key, rel)
	if t.AnonymizedMarker != "" {
		if marker = rel.cols[t.AnonymizedMarker]; marker == nil {
			c.errorf(key+".anonymized_marker", "no such column %s in %s", t.AnonymizedMarker, name)
		} else if !marker.isBase("timestamp", "timestamptz", "bool") {
			c.errorf(key+".anonymized_marker", "%s is %s; the marker must be timestamp, timestamptz (set to now()) or boolean (set to true)", marker.name, marker.typ)
		}
	}
	for _, colName := range sortedKeys(t.Columns) {
		col := t.Columns[colName]
		if col == nil {
			continue // reported by validate
		}
		ckey := key + ".columns." + colName
		a := rel.cols[colName]
		if a == nil {
			c.errorf(ckey, "no such column in %s", name)
			continue
		}
		c.checkMask(ckey+".mask", col.Mask, a)
		if col.Anonymize.Kind != None {
			c.checkAnonymize(ckey+".anonymize", t, rel, col.Anonymize, a)
		}
	}
	c.checkUnruled(key, t, rel)
	c.checkRestorable(key, t, rel) // check_copy.go
}

// checkUnruled warns about the columns of a declared table whose names
// suggest personal data but that have no rule: columns added since the
// rules were written, say. It goes by names only (scan.MatchName), and
// leaves out the key, the parent link, the marker, and the columns a
// declared ancestor protects (checkAncestors reports those).
func (c *checker) checkUnruled(key string, t *Table, rel *relation) {
	for _, name := range sortedKeys(rel.cols) {
		if _, ruled := t.Columns[name]; ruled || t.Key.Has(name) || name == t.AnonymizedMarker ||
			(t.Parent != nil && t.Parent.Via.Has(name)) || c.ancestorRules(rel, name) {
			continue
		}
		a := rel.cols[name]
		kind, word, ok := scan.MatchName(name)
		if !ok || !kind.Fits(scan.ClassOf(a.baseSchema, a.base)) {
			continue
		}
		c.warnf(key+".columns."+name, "no rule, but the name suggests personal data (%s: %q); declare it with a mask, or rename it if it holds none", kind, word)
	}
}

// ancestorRules reports whether the nearest declared ancestor of rel
// has a rule for column name.
func (c *checker) ancestorRules(rel *relation, name string) bool {
	for _, anc := range rel.ancestors {
		if at := c.cfg.Tables[anc]; at != nil {
			_, ok := at.Columns[name]
			return ok
		}
	}
	return false
}

// checkMask checks that a mask strategy fits the column's type.
func (c *checker) checkMask(key string, s Strategy, a *attribute) {
	fits := true
	switch s.Kind {
	case Generalize:
		fits = a.isTemporal()
	case Partial, Email, Pseudonym, Blank, Text:
		fits = a.isText()
	}
	if !fits {
		c.errorf(key, "%s does not fit %s %s (fits: %s)", s, a.name, a.typ, strings.Join(maskFits(a), ", "))
	}
	if s.Kind == Pseudonym && os.Getenv(PseudonymKeyEnv) == "" {
		c.errorf(key, "pseudonym needs the environment variable %s (its HMAC key), which is not set; the proxy reads it at start", PseudonymKeyEnv)
	}
}

// maskFits lists the mask strategies that fit a column.
func maskFits(a *attribute) []string {
	switch {
	case a.isText():
		return []string{"redact", "nullify", "blank", "text:<fixed>", "partial:<first>,<last>", "email", "pseudonym"}
	case a.isTemporal():
		return []string{"generalize:year|month", "redact", "nullify"}
	}
	return []string{"redact", "nullify"}
}

// anonymizeFits lists the anonymize strategies that fit a column's type.
func anonymizeFits(a *attribute) []string {
	switch {
	case a.isText():
		return []string{"redact", "nullify", "blank", "text:<fixed>", "random_email", "random_id"}
	case a.isUUID():
		return []string{"random_id", "redact (writes NULL)", "nullify"}
	}
	return []string{"redact (writes NULL)", "nullify"}
}

// uniqueFits names the anonymize strategies that keep a unique column
// unique.
func uniqueFits(a *attribute) string {
	switch {
	case a.isText():
		return "random_id (or random_email for an address)"
	case a.isUUID():
		return "random_id"
	}
	return "none writes distinct " + a.typ + " values; leave anonymize out"
}

// checkAnonymize checks that ANONYMIZE can write strategy s to column a.
func (c *checker) checkAnonymize(key string, t *Table, rel *relation, s Strategy, a *attribute) {
	if rel.kind == 'm' {
		c.errorf(key, "%s is a materialized view, which ANONYMIZE cannot update; refresh it after anonymizing the tables it reads", rel.name)
		return
	}
	// Keys are never anonymized: the rows would lose their identity or
	// their links.
	switch {
	case t.Key.Has(a.name):
		c.errorf(key, "%s is %s%s; keys are never anonymized", a.name, t.Key.Role("table's key"), rel.constraintSuffix(t.Key))
		return
	case t.Parent != nil && t.Parent.Via.Has(a.name):
		c.errorf(key, "%s is parent.via, the link to %s%s; keys are never anonymized", a.name, t.Parent.Table, rel.fkSuffix(a.num))
		return
	case a.name == t.AnonymizedMarker:
		c.errorf(key, "%s is the anonymized_marker, which ANONYMIZE sets itself", a.name)
		return
	}
	if fks := rel.fksUsing(a.num); len(fks) > 0 {
		c.errorf(key, "%s is used by %s; keys are never anonymized", a.name, strings.Join(fks, "; "))
		return
	}
	writesNull := s.Kind == Nullify || (s.Kind == Redact && !a.isText())
	switch s.Kind {
	case RandomID:
		if !a.isText() && !a.isUUID() {
			c.errorf(key, "%s does not fit %s %s (fits: %s)", s, a.name, a.typ, strings.Join(anonymizeFits(a), ", "))
			return
		}
	case RandomEmail, Blank, Text:
		if !a.isText() {
			c.errorf(key, "%s does not fit %s %s (fits: %s)", s, a.name, a.typ, strings.Join(anonymizeFits(a), ", "))
			return
		}
	}
	if writesNull {
		switch {
		case a.notNull:
			c.errorf(key, "%s writes NULL, but column %s is NOT NULL (%s)", s, a.name, rel.nonNullHint(a))
		case a.notNullDomain != "":
			c.errorf(key, "%s writes NULL, but the domain %s of column %s is NOT NULL (%s)", s, a.notNullDomain, a.name, rel.nonNullHint(a))
		}
	}
	fixed, isFixed := fixedValue(s, a)
	for _, u := range rel.uniques {
		if !u.covers(a.num) {
			continue
		}
		if isFixed {
			c.errorf(key, "%s writes the same value %s to every anonymized row, but %s is in %s; use %s, which writes a fresh value to each row", s, quoteLiteral(fixed), a.name, u.describe(), uniqueFits(a))
			break
		}
		if writesNull && u.nullsNotDistinct {
			c.errorf(key, "%s writes NULL to every anonymized row, but %s is in %s, which is NULLS NOT DISTINCT; use %s", s, a.name, u.describe(), uniqueFits(a))
			break
		}
	}
	if isFixed && a.maxLen > 0 {
		// PostgreSQL accepts a longer value when the excess is all spaces.
		if n := utf8.RuneCountInString(strings.TrimRight(fixed, " ")); n > a.maxLen {
			c.errorf(key, "%s writes %d characters, but column %s is %s", s, n, a.name, a.typ)
		}
	}
}

// nonNullHint says which anonymize strategies fit a NOT NULL column.
func (r *relation) nonNullHint(a *attribute) string {
	switch {
	case (a.isText() || a.isUUID()) && slices.ContainsFunc(r.uniques, func(u uniqueIndex) bool { return u.covers(a.num) }):
		return "fits: " + uniqueFits(a)
	case a.isText():
		return "fits: redact, blank, text:<fixed>, random_email, random_id"
	case a.isUUID():
		return "fits: random_id"
	}
	return "no strategy writes a non-NULL " + a.typ + ": leave anonymize out, or drop NOT NULL"
}

// fixedValue gives the one value strategy s writes to every row, when it
// writes one.
func fixedValue(s Strategy, a *attribute) (string, bool) {
	switch s.Kind {
	case Redact:
		if a.isText() {
			return "***", true
		}
	case Blank:
		return "", true
	case Text:
		return s.Text, true
	}
	return "", false
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// checkParent checks the parent link of a child table.
func (c *checker) checkParent(key, name string, t *Table, rel *relation) {
	p := t.Parent
	if p == nil || p.Table == "" || len(p.Via) == 0 {
		return // validate reports a parent without table or via
	}
	pt, declared := c.cfg.Tables[p.Table]
	if !declared || pt == nil {
		c.errorf(key+".parent.table", "%s is not declared under tables", p.Table)
		return
	}
	prel := c.rels[p.Table]
	if prel == nil {
		c.errorf(key+".parent.table", "%s does not exist in the database", p.Table)
	}
	var via []int16
	if rel != nil {
		var missing string
		if via, missing = rel.nums(p.Via); missing != "" {
			c.errorf(key+".parent.via", "no such column %s in %s", missing, name)
		}
	}
	if len(pt.Key) == 0 {
		c.errorf(key+".parent.table", "%s declares no key; ANONYMIZE finds the rows of %s by matching %s to the parent's key", p.Table, name, p.Via)
		return
	}
	if via == nil || prel == nil || len(pt.Key) != len(p.Via) {
		return // a length mismatch is reported by validate
	}
	pkey, missing := prel.nums(pt.Key)
	if missing != "" {
		return // reported at the parent's key
	}
	if !rel.hasForeignKey(via, prel.oid, pkey) {
		c.warnf(key+".parent.via", "no foreign key from %s to %s; ANONYMIZE still cascades by value, but nothing keeps the link consistent",
			columnsOf(name, p.Via), columnsOf(p.Table, pt.Key))
	}
}

// checkAncestors checks that a declared partition or inheritance child
// protects every column its nearest declared ancestor protects: masking
// applies the child's own rules when it is read directly.
func (c *checker) checkAncestors(key, name string, t *Table, rel *relation) {
	for _, anc := range rel.ancestors {
		at := c.cfg.Tables[anc]
		if at == nil {
			continue
		}
		var missing []string
		for _, col := range sortedKeys(at.Columns) {
			if _, ok := t.Columns[col]; !ok {
				missing = append(missing, col)
			}
		}
		if len(missing) > 0 {
			c.errorf(key+".columns", "%s inherits from %s, whose rules protect %s; reading %s directly applies only its own rules, which leave %s unmasked: declare %s here too",
				name, anc, strings.Join(missing, ", "), name, plural(len(missing), "it", "them"), plural(len(missing), "it", "them"))
		}
		return // the nearest declared ancestor checks its own ancestors
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// suggestTable names a table whose name differs from name only in case.
func (c *checker) suggestTable(name string) string {
	schema, rel, ok := strings.Cut(name, ".")
	if !ok {
		return ""
	}
	var found string
	err := c.conn.QueryRow(c.ctx, `
SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE lower(n.nspname) = lower($1) AND lower(c.relname) = lower($2) AND c.relkind IN ('r', 'p', 'f', 'm', 'v')
ORDER BY 1 LIMIT 1`, schema, rel).Scan(&found)
	if err != nil {
		return "" // a hint only
	}
	return fmt.Sprintf(" (did you mean %s? names are case-sensitive)", found)
}

// checkRoles warns about roles that do not exist or cannot log in.
func (c *checker) checkRoles() error {
	lists := []struct {
		key   string
		roles []string
	}{{"roles.anonymize", c.cfg.Roles.Anonymize}, {"roles.unmasked", c.cfg.Roles.Unmasked}}
	var all []string
	for _, l := range lists {
		all = append(all, l.roles...)
	}
	if len(all) == 0 {
		return nil
	}
	canLogin := make(map[string]bool)
	rows, err := c.conn.Query(c.ctx, `SELECT rolname, rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = ANY($1)`, all)
	if err != nil {
		return fmt.Errorf("reading pg_roles: %w", err)
	}
	for rows.Next() {
		var name string
		var login bool
		if err := rows.Scan(&name, &login); err != nil {
			return err
		}
		canLogin[name] = login
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading pg_roles: %w", err)
	}
	for _, l := range lists {
		for _, r := range l.roles {
			login, ok := canLogin[r]
			switch {
			case !ok:
				c.warnf(l.key, "role %s does not exist (it may be created later)", r)
			case !login:
				c.warnf(l.key, "role %s cannot log in (NOLOGIN); pgveil matches the login role of a session, not the roles it is a member of", r)
			}
		}
	}
	return nil
}

// relation is what Check reads of one declared relation.
type relation struct {
	name      string // schema.name as declared
	oid       uint32
	kind      byte // pg_class.relkind
	cols      map[string]*attribute
	uniques   []uniqueIndex
	fks       []foreignKey // foreign keys this relation uses or is referenced by
	ancestors []string     // pg_inherits ancestors (schema.name), nearest first
}

// attribute is one column, with domains resolved to their base type.
type attribute struct {
	name          string
	num           int16
	typ           string // the declared type, as format_type gives it
	baseSchema    string // schema of the base type
	base          string // pg_type.typname of the base type, e.g. varchar, timestamptz
	maxLen        int    // the character limit of varchar(n) or char(n); 0 when none
	notNull       bool   // attnotnull
	notNullDomain string // a NOT NULL domain in the column's type chain
}

// isBase reports whether the base type is one of the pg_catalog types names.
func (a *attribute) isBase(names ...string) bool {
	return a.baseSchema == "pg_catalog" && slices.Contains(names, a.base)
}

// isText reports whether the column holds text: text, varchar, char, name,
// or citext (in whatever schema the extension lives).
func (a *attribute) isText() bool {
	return a.isBase("text", "varchar", "bpchar", "name") || a.base == "citext"
}

// isUUID reports whether the column is a uuid, which random_id fits.
func (a *attribute) isUUID() bool { return a.isBase("uuid") }

// isTemporal reports whether generalize fits the column.
func (a *attribute) isTemporal() bool { return a.isBase("date", "timestamp", "timestamptz") }

// uniqueIndex is a unique index, or the primary key or unique constraint
// it backs.
type uniqueIndex struct {
	name             string // the constraint's name when it backs one, else the index's
	what             string // "primary key", "unique constraint" or "unique index"
	keyCols          []int16
	exprCols         []int16 // columns its expressions use
	partial          bool
	nullsNotDistinct bool
}

func (u uniqueIndex) covers(num int16) bool {
	return slices.Contains(u.keyCols, num) || slices.Contains(u.exprCols, num)
}

func (u uniqueIndex) describe() string { return u.what + " " + u.name }

// foreignKey is a foreign key constraint.
type foreignKey struct {
	name          string
	rel, refRel   uint32
	relName       string // schema.name
	refName       string
	cols, refCols []int16
	colNames      []string
	refColNames   []string
}

func (f foreignKey) describe() string {
	return fmt.Sprintf("foreign key %s, %s(%s) references %s(%s)", f.name,
		f.relName, strings.Join(f.colNames, ", "), f.refName, strings.Join(f.refColNames, ", "))
}

// uniqueWithin returns a unique index that makes the columns nums unique
// together: all its columns are among them, and it has no expression and
// no predicate.
func (r *relation) uniqueWithin(nums []int16) *uniqueIndex {
	for i, u := range r.uniques {
		if len(u.keyCols) > 0 && len(u.exprCols) == 0 && !u.partial && allIn(u.keyCols, nums) {
			return &r.uniques[i]
		}
	}
	return nil
}

// uniqueAlone returns the unique index that makes column num unique by
// itself: no other column, no expression, no predicate.
func (r *relation) uniqueAlone(num int16) *uniqueIndex {
	return r.uniqueWithin([]int16{num})
}

func allIn(cols, set []int16) bool {
	for _, c := range cols {
		if !slices.Contains(set, c) {
			return false
		}
	}
	return true
}

// nums returns the numbers of the named columns, or the first name that
// is not a column.
func (r *relation) nums(cols Columns) (nums []int16, missing string) {
	for _, name := range cols {
		a := r.cols[name]
		if a == nil {
			return nil, name
		}
		nums = append(nums, a.num)
	}
	return nums, ""
}

// names returns the names of columns nums, in order.
func (r *relation) names(nums []int16) Columns {
	var out Columns
	for _, n := range nums {
		for name, a := range r.cols {
			if a.num == n {
				out = append(out, name)
			}
		}
	}
	return out
}

// coveringHint names the unique indexes that cover some of nums, but only
// with more columns, an expression or a predicate, and suggests the key a
// plain one of them makes.
func (r *relation) coveringHint(nums []int16) string {
	var names []string
	var wider Columns
	for _, u := range r.uniques {
		if !slices.ContainsFunc(nums, u.covers) {
			continue
		}
		names = append(names, u.describe())
		if wider == nil && len(u.exprCols) == 0 && !u.partial && allIn(nums, u.keyCols) {
			wider = r.names(u.keyCols)
		}
	}
	if len(names) == 0 {
		return ""
	}
	hint := fmt.Sprintf(" (%s %s it only with more columns, an expression or a WHERE clause)",
		strings.Join(names, ", "), plural(len(names), "covers", "cover"))
	if wider != nil {
		hint += fmt.Sprintf("; declare key: %s", wider)
	}
	return hint
}

// constraintSuffix names the constraint that makes the key unique, for
// messages.
func (r *relation) constraintSuffix(key Columns) string {
	nums, missing := r.nums(key)
	if missing != "" {
		return ""
	}
	if u := r.uniqueWithin(nums); u != nil {
		return " (" + u.describe() + ")"
	}
	return ""
}

// columnsOf names the columns of a table for messages: public.t.id, or
// public.t(id, started_at).
func columnsOf(table string, cols Columns) string {
	if len(cols) == 1 {
		return table + "." + cols[0]
	}
	return table + cols.Tuple()
}

// fkSuffix names the foreign keys num takes part in, for messages.
func (r *relation) fkSuffix(num int16) string {
	if fks := r.fksUsing(num); len(fks) > 0 {
		return " (" + strings.Join(fks, "; ") + ")"
	}
	return ""
}

// fksUsing describes the foreign keys that use or reference column num.
func (r *relation) fksUsing(num int16) []string {
	var out []string
	for _, f := range r.fks {
		if (f.rel == r.oid && slices.Contains(f.cols, num)) || (f.refRel == r.oid && slices.Contains(f.refCols, num)) {
			out = append(out, f.describe())
		}
	}
	return out
}

// hasForeignKey reports whether a foreign key links exactly columns cols
// to columns refCols of relation ref, in that order.
func (r *relation) hasForeignKey(cols []int16, ref uint32, refCols []int16) bool {
	for _, f := range r.fks {
		if f.rel == r.oid && f.refRel == ref && slices.Equal(f.cols, cols) && slices.Equal(f.refCols, refCols) {
			return true
		}
	}
	return false
}

func relkindName(k byte) string {
	switch k {
	case 'S':
		return "sequence"
	case 'i', 'I':
		return "index"
	case 'c':
		return "composite type"
	case 't':
		return "TOAST table"
	}
	return fmt.Sprintf("relation of kind %q", k)
}

const checkRelationSQL = `
SELECT c.oid, c.relkind::text,
       ARRAY(WITH RECURSIVE anc(oid, depth) AS (
               SELECT i.inhparent, 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid
               UNION SELECT i.inhparent, anc.depth + 1 FROM pg_catalog.pg_inherits i JOIN anc ON i.inhrelid = anc.oid)
             SELECT an.nspname || '.' || ac.relname FROM anc
             JOIN pg_catalog.pg_class ac ON ac.oid = anc.oid
             JOIN pg_catalog.pg_namespace an ON an.oid = ac.relnamespace
             ORDER BY anc.depth, 1)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2`

// checkColumnsSQL reads the columns with their base types: a domain is
// followed down to the type it is over, keeping the first typmod (the
// varchar(n) limit) and whether a domain on the way is NOT NULL.
const checkColumnsSQL = `
WITH RECURSIVE chain(attnum, typid, typmod, notnull_domain) AS (
    SELECT a.attnum, a.atttypid, a.atttypmod, NULL::name
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT ch.attnum, t.typbasetype,
           CASE WHEN ch.typmod = -1 THEN t.typtypmod ELSE ch.typmod END,
           COALESCE(ch.notnull_domain, CASE WHEN t.typnotnull THEN t.typname END)
    FROM chain ch JOIN pg_catalog.pg_type t ON t.oid = ch.typid
    WHERE t.typtype = 'd'
)
SELECT a.attname, a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod),
       bn.nspname, bt.typname, ch.typmod, a.attnotnull, COALESCE(ch.notnull_domain, '')
FROM chain ch
JOIN pg_catalog.pg_type bt ON bt.oid = ch.typid AND bt.typtype <> 'd'
JOIN pg_catalog.pg_namespace bn ON bn.oid = bt.typnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attnum = ch.attnum`

// checkUniqueSQL reads the unique indexes with the constraints they back.
// Columns used only in expressions come from pg_depend, less the INCLUDE
// columns. indnullsnotdistinct exists from PostgreSQL 15 on; reading it
// through to_jsonb gives NULL on older servers.
const checkUniqueSQL = `
SELECT COALESCE(con.conname, ic.relname::text),
       CASE con.contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique constraint' ELSE 'unique index' END,
       (i.indkey::int2[])[0:i.indnkeyatts - 1],
       CASE WHEN i.indexprs IS NULL THEN '{}'::int2[] ELSE ARRAY(
           SELECT d.refobjsubid::int2 FROM pg_catalog.pg_depend d
           WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
             AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = i.indrelid AND d.refobjsubid > 0
             AND d.refobjsubid <> ALL ((i.indkey::int2[])[i.indnkeyatts:])) END,
       i.indpred IS NOT NULL,
       COALESCE((pg_catalog.to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_catalog.pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u')
WHERE i.indrelid = $1 AND i.indisunique
ORDER BY 1`

// checkForeignKeysSQL reads the foreign keys that use or reference a relation.
const checkForeignKeysSQL = `
SELECT con.conname, con.conrelid, con.confrelid,
       rn.nspname || '.' || r.relname, fn.nspname || '.' || f.relname,
       con.conkey, con.confkey,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num ORDER BY k.ord),
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num ORDER BY k.ord)
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class r ON r.oid = con.conrelid JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
JOIN pg_catalog.pg_class f ON f.oid = con.confrelid JOIN pg_catalog.pg_namespace fn ON fn.oid = f.relnamespace
WHERE con.contype = 'f' AND (con.conrelid = $1 OR con.confrelid = $1)
ORDER BY con.conname, 4`

// loadRelation reads a declared relation from the catalog; nil when there
// is none of that name.
func (c *checker) loadRelation(name string) (*relation, error) {
	schema, relName, ok := strings.Cut(name, ".")
	if !ok {
		return nil, nil // validate reports the unqualified name
	}
	rel := &relation{name: name, cols: make(map[string]*attribute)}
	var kind string
	err := c.conn.QueryRow(c.ctx, checkRelationSQL, schema, relName).Scan(&rel.oid, &kind, &rel.ancestors)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the catalog entry of %s: %w", name, err)
	}
	rel.kind = kind[0]
	if err := c.loadColumns(rel); err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", name, err)
	}
	if err := c.loadUniques(rel); err != nil {
		return nil, fmt.Errorf("reading the unique indexes of %s: %w", name, err)
	}
	if err := c.loadForeignKeys(rel); err != nil {
		return nil, fmt.Errorf("reading the foreign keys of %s: %w", name, err)
	}
	return rel, nil
}

func (c *checker) loadColumns(rel *relation) error {
	rows, err := c.conn.Query(c.ctx, checkColumnsSQL, rel.oid)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		a := &attribute{}
		var typmod int32
		if err := rows.Scan(&a.name, &a.num, &a.typ, &a.baseSchema, &a.base, &typmod, &a.notNull, &a.notNullDomain); err != nil {
			return err
		}
		if a.isBase("varchar", "bpchar") && typmod >= 4 {
			a.maxLen = int(typmod - 4) // VARHDRSZ
		}
		rel.cols[a.name] = a
	}
	return rows.Err()
}

func (c *checker) loadUniques(rel *relation) error {
	rows, err := c.conn.Query(c.ctx, checkUniqueSQL, rel.oid)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var u uniqueIndex
		if err := rows.Scan(&u.name, &u.what, &u.keyCols, &u.exprCols, &u.partial, &u.nullsNotDistinct); err != nil {
			return err
		}
		u.keyCols = slices.DeleteFunc(u.keyCols, func(n int16) bool { return n == 0 }) // 0: an expression
		rel.uniques = append(rel.uniques, u)
	}
	return rows.Err()
}

func (c *checker) loadForeignKeys(rel *relation) error {
	rows, err := c.conn.Query(c.ctx, checkForeignKeysSQL, rel.oid)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var f foreignKey
		if err := rows.Scan(&f.name, &f.rel, &f.refRel, &f.relName, &f.refName, &f.cols, &f.refCols, &f.colNames, &f.refColNames); err != nil {
			return err
		}
		rel.fks = append(rel.fks, f)
	}
	return rows.Err()
}
