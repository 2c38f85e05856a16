package masking

import (
	"fmt"
	"sort"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// Options carries what the analysis needs besides the text.
type Options struct {
	// Role is the session's login role, named in rejection messages.
	Role string
	// MaxViewDepth bounds views read through views (default 16); a deeper
	// nesting is rejected.
	MaxViewDepth int
}

const defaultMaxViewDepth = 16

// Analyze parses sql (one or more statements, as a simple-protocol Query
// carries them) and returns its plan for a masked session. It returns a
// *Rejection when any statement cannot be proven safe (the whole text is
// then refused), pg_query's error when the text does not parse, and the
// Catalog's error when a lookup fails. The plan depends on the shape of the
// text, not on its literal values, and holds none of them.
func Analyze(sql string, cat Catalog, opt Options) (plan *Plan, err error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, err
	}
	if opt.MaxViewDepth <= 0 {
		opt.MaxViewDepth = defaultMaxViewDepth
	}
	a := &analyzer{cat: cat, opt: opt, pathCall: pathCall(tree.GetStmts())}
	defer catchBailout(&plan, &err)
	if name := a.pgSettingsName(tree.GetStmts()); name != "" {
		a.settingsCall, a.settingsName = tree.GetStmts()[0].GetStmt().GetSelectStmt().GetTargetList()[0].GetResTarget().GetVal().GetFuncCall(), name
	}
	plan = &Plan{}
	for _, raw := range tree.GetStmts() {
		plan.Statements = append(plan.Statements, a.topStatement(raw.GetStmt()))
	}
	a.checkSequence(plan.Statements)
	plan.rewrites = a.rewriteSteps(tree)
	return plan, nil
}

// analyzer holds the state of one Analyze call.
type analyzer struct {
	cat Catalog
	opt Options
	st  *stmtState
	// views counts the view definitions being read. Inside one, only
	// lineage is computed: the definition is the owner's, not the session's
	// code, so the rules on what a query may do do not apply to it.
	views int
	// resolved says, per statement so far, whether it resolved a name.
	resolved []bool
	// steps counts the nodes analysed, against maxSteps.
	steps int
	// marks are the nodes the server must run changed (rewrite.go).
	marks map[any]rewriteKind
	// pathCall is the one set_config call that may set search_path, and
	// settingsCall one whose setting is settingsName (searchpath.go).
	pathCall, settingsCall *pg.FuncCall
	settingsName           string
	// top is the top-level statement being analysed.
	top *pg.Node
}

// maxSteps bounds the work of one analysis. Nested recursive queries are
// analysed again until their lineage settles, which multiplies with the
// nesting; a text that needs more steps than this is refused.
const maxSteps = 200000

// step counts one unit of work.
func (a *analyzer) step() {
	a.steps++
	if a.steps > maxSteps {
		a.fail(&Rejection{Construct: "a query this complex",
			Message: "pgveil: the query is too complex to analyse", Hint: "split it into simpler statements"})
	}
}

// stmtState is what one top-level statement accumulates.
type stmtState struct {
	reads    []string // PII sources referenced anywhere, sorted
	origins  map[[2]int64]Origin
	resolved bool // a relation or function name was resolved
	// unseen is set by FETCH, MOVE and EXECUTE, which read what a cursor
	// or prepared statement reads: they report ReadsPII.
	unseen bool
	// relations caches the columns of the relations read, views
	// included, with what reading them reads.
	relations map[string]relationEntry
	// path is what the statement does to search_path.
	path pathKind
}

type relationEntry struct {
	it    *item
	reads lineage
}

func newStmtState() *stmtState {
	return &stmtState{origins: map[[2]int64]Origin{}, relations: map[string]relationEntry{}}
}

func (a *analyzer) topStatement(n *pg.Node) StatementPlan {
	a.st = newStmtState()
	a.top = n
	sp := a.statement(n)
	sp.ReadsPII = len(a.st.reads) > 0 || a.st.unseen
	sp.Origins = a.st.originList()
	if sp.path == pathNone {
		sp.path = a.st.path
	}
	a.resolved = append(a.resolved, a.st.resolved)
	return sp
}

func (s *stmtState) originList() []Origin {
	var out []Origin
	for _, o := range s.origins {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Table != out[j].Table {
			return out[i].Table < out[j].Table
		}
		return out[i].Attnum < out[j].Attnum
	})
	return out
}

// read records that the statement references values with lineage l.
func (a *analyzer) read(l lineage) lineage {
	a.st.reads = unionSorted(a.st.reads, l.sources)
	return l
}

// readsDuring runs f and returns the PII sources read while it ran.
func (a *analyzer) readsDuring(f func()) lineage {
	saved := a.st.reads
	a.st.reads = nil
	f()
	got := a.st.reads
	a.st.reads = unionSorted(saved, got)
	return lineage{sources: got}
}

// checkSequence refuses a text where a statement that changes the catalog
// is followed by one that resolves names: the later statement was analysed
// against the catalog as it was before the change.
func (a *analyzer) checkSequence(sps []StatementPlan) {
	changed, pathChanged := false, false
	for i, sp := range sps {
		if changed && a.resolvedIn(i) {
			a.fail(&Rejection{Construct: "a schema change followed by other statements",
				Message: "pgveil: a statement that changes the schema must be sent on its own, not followed by other statements in the same query",
				Hint:    "send the statements one by one"})
		}
		if pathChanged && a.resolvedIn(i) {
			a.fail(&Rejection{Kind: ReasonIdentity, Construct: "a search_path change followed by other statements",
				Message: "pgveil: a statement that changes search_path must be sent on its own, not followed by other statements in the same query",
				Hint:    "send the statements one by one"})
		}
		changed = changed || sp.ChangesCatalog
		pathChanged = pathChanged || sp.path != pathNone
	}
}

// resolvedIn reports whether statement i resolved a relation or function.
func (a *analyzer) resolvedIn(i int) bool { return i < len(a.resolved) && a.resolved[i] }

// bailout carries a rejection or a catalog error up to Analyze.
type bailout struct{ err error }

func (a *analyzer) fail(err error) { panic(bailout{err}) }

func catchBailout(plan **Plan, err *error) {
	r := recover()
	if r == nil {
		return
	}
	b, ok := r.(bailout)
	if !ok {
		panic(r)
	}
	*plan, *err = nil, b.err
}

// who names the session in messages.
func (a *analyzer) who() string {
	if a.opt.Role == "" {
		return "masked roles"
	}
	return "role " + a.opt.Role
}

// refuse rejects a construct that is not allowed whatever it reads.
func (a *analyzer) refuse(construct, why string) { a.refuseAs("", construct, why) }

// refuseAs is refuse with the rejection's Kind (a Reason constant).
func (a *analyzer) refuseAs(kind, construct, why string) {
	msg := fmt.Sprintf("pgveil: %s is not allowed for %s", construct, a.who())
	if why != "" {
		msg += " (" + why + ")"
	}
	a.fail(&Rejection{Kind: kind, Construct: construct, Message: msg})
}

// refusePII rejects a use of a value derived from a PII column. use reads
// "ORDER BY on it", "writing it with UPDATE", ...
func (a *analyzer) refusePII(construct, use string, l lineage, hint string) {
	a.refusePIIAs("", construct, use, l, hint)
}

// refusePIIAs is refusePII with the rejection's Kind (a Reason constant).
func (a *analyzer) refusePIIAs(kind, construct, use string, l lineage, hint string) {
	col := l.column()
	a.fail(&Rejection{Kind: kind, Construct: construct, Column: col, Hint: hint,
		Message: fmt.Sprintf("pgveil: column %s is PII; %s is not allowed for %s", col, use, a.who())})
}

// refuseOn rejects construct applied to a PII-derived value.
func (a *analyzer) refuseOn(construct string, l lineage, hint string) {
	a.refusePII(construct, construct+" on it", l, hint)
}

// unsupported rejects a node type the analyser does not handle there.
func (a *analyzer) unsupported(n *pg.Node) {
	name := nodeType(n)
	if name == "" {
		name = "an empty node"
	}
	a.fail(&Rejection{Kind: ReasonUnsupported, Construct: name,
		Message: fmt.Sprintf("pgveil: %s is not supported for masked roles", name)})
}

// catalogError aborts the analysis with a lookup error.
func (a *analyzer) catalogError(err error) { a.fail(err) }
