package masking

import (
	"fmt"
	"slices"
)

// pathTracker follows a session's search_path through its transactions,
// as the server's GUC stack does (guc.c, AtEOXact_GUC): a SET lasts if its
// transaction commits, a SET LOCAL until the transaction ends, a
// savepoint's rollback restores the values it saved, and a failed
// statement outside a transaction block rolls the implicit transaction
// back. It sees what the server did through the proxy's callbacks:
// completed statements (CommandComplete) and, at each ReadyForQuery, the
// transaction status and whether an error came first.
type pathTracker struct {
	reset   []string // the setting at login, what RESET restores
	session []string // the committed setting: what the next transaction starts with
	cur     []string // the setting now
	commit  []string // what session becomes if the transaction commits now
	block   bool     // in an explicit transaction block
	failed  bool     // the block failed: it can only roll back
	saves   []savedPath
	// lost is set when the server's status contradicts what the tracker
	// saw: from then on the session refuses every query.
	lost bool
}

// savedPath is a savepoint and the values it restores.
type savedPath struct {
	name        string
	cur, commit []string
}

func newPathTracker(setting []string) *pathTracker {
	return &pathTracker{reset: setting, session: setting, cur: setting, commit: setting}
}

// set applies a completed SET, RESET or set_config of search_path.
func (t *pathTracker) set(kind pathKind, value []string) {
	switch kind {
	case pathReset:
		kind, value = pathSet, t.reset
	case pathResetLocal:
		kind, value = pathLocal, t.reset
	}
	t.cur = value
	if kind == pathSet {
		t.commit = value
	}
}

// txn applies a completed transaction statement.
func (t *pathTracker) txn(op txnOp) {
	switch op.kind {
	case txnBegin:
		t.block = true
	case txnCommit:
		if !t.failed {
			t.session = t.commit
		}
		t.end(op.chain)
	case txnRollback:
		t.end(op.chain)
	case txnSavepoint:
		t.saves = append(t.saves, savedPath{op.savepoint, t.cur, t.commit})
	case txnRelease:
		if i := t.savepoint(op.savepoint); i >= 0 {
			t.saves = t.saves[:i]
		}
	case txnRollbackTo:
		if i := t.savepoint(op.savepoint); i >= 0 {
			t.cur, t.commit = t.saves[i].cur, t.saves[i].commit
			t.saves = t.saves[:i+1]
			t.failed = false
		}
	}
}

// savepoint finds the latest savepoint of a name (the server's choice
// when names repeat), -1 when there is none (the server failed it).
func (t *pathTracker) savepoint(name string) int {
	for i := len(t.saves) - 1; i >= 0; i-- {
		if t.saves[i].name == name {
			return i
		}
	}
	return -1
}

// end closes the transaction; chain starts the next one at once.
func (t *pathTracker) end(chain bool) {
	t.cur, t.commit = t.session, t.session
	t.saves, t.failed, t.block = nil, false, chain
}

// ready applies a ReadyForQuery: status is 'I' (idle), 'T' (in a block) or
// 'E' (in a failed block); failed says an error ended a statement since
// the previous ReadyForQuery.
func (t *pathTracker) ready(status byte, failed bool) {
	switch status {
	case 'I':
		switch {
		case !t.block && !failed: // the implicit transaction committed
			t.session = t.commit
		case t.block && !failed && t.dirty():
			t.lost = true // a block ended that the tracker did not see end
		}
		t.end(false)
	case 'T':
		if failed && !t.block { // an implicit transaction rolled back, then BEGIN cannot have run
			t.lost = true
		}
		t.block = true
	case 'E':
		t.block, t.failed = true, true
	default:
		t.lost = true
	}
}

// dirty reports whether the end of the transaction may change the path.
func (t *pathTracker) dirty() bool {
	if !slices.Equal(t.cur, t.session) || !slices.Equal(t.commit, t.session) {
		return true
	}
	for _, s := range t.saves {
		if !slices.Equal(s.cur, t.session) || !slices.Equal(s.commit, t.session) {
			return true
		}
	}
	return false
}

// Ready is told each ReadyForQuery's transaction status and whether an
// error ended a statement since the previous one (proxy.Policy).
func (s *Session) Ready(status byte, failed bool) {
	s.track.ready(status, failed)
	s.followPath()
}

// completedPath applies statement idx of a, which the server completed,
// to the tracked path.
func (s *Session) completedPath(a *Analysis, st *StatementPlan, idx int) {
	switch {
	case st.txn.kind != txnNone:
		s.track.txn(st.txn)
	case st.path == pathReset || st.path == pathResetLocal:
		s.track.set(st.path, nil)
	case st.path != pathNone:
		values, err := pathValues(a.sql)
		if err != nil || idx >= len(values) {
			s.track.lost = true
			break
		}
		s.track.set(st.path, schemasOf(values[idx], s.user))
	}
	s.followPath()
}

// followPath makes the analyser resolve names through the tracked path.
func (s *Session) followPath() {
	if slices.Equal(s.path, s.track.cur) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.path, s.pathKey = s.track.cur, fmt.Sprint(s.track.cur)
	if db, ok := s.cat.(*sessionCatalog); ok {
		s.cat = &sessionCatalog{db: db.db, role: s.user, path: s.path}
	}
}

// Barrier reports whether a, once sent, may change how the server
// resolves names before the next ReadyForQuery: a change of search_path,
// or the end of a transaction the path changed in. Until that
// ReadyForQuery the proxy refuses other queries, parses and binds, which
// would be analysed against a path the server may no longer have.
func (s *Session) Barrier(a *Analysis) bool {
	dirty := s.track.dirty()
	for _, st := range a.plan.Statements {
		if st.path != pathNone || (st.txn.kind != txnNone && dirty) {
			return true
		}
	}
	return false
}

// Bindable refuses a Bind of a statement analysed under another
// search_path than the session's: the server parses a prepared statement
// again when search_path has changed, and the names in it may now mean
// other relations.
func (s *Session) Bindable(a *Analysis) error {
	if s.track.lost {
		return errPathLost
	}
	if a.pathKey != s.pathKey {
		return &Rejection{Kind: ReasonIdentity, Construct: "a statement prepared under another search_path",
			Message: "pgveil: this statement was prepared under another search_path; prepare it again", Hint: "prepare it again after changing search_path"}
	}
	return nil
}

var errPathLost = &Rejection{Kind: ReasonIdentity, Construct: "a session whose search_path pgveil lost track of",
	Message: "pgveil: the session's search_path can no longer be followed; reconnect"}

// admit applies the session's checks to an analysis before it is sent:
// a lost path refuses everything, and EXECUTE of a statement prepared
// under another search_path is refused (see Bindable).
func (s *Session) admit(a *Analysis) error {
	if s.track.lost {
		return errPathLost
	}
	a.pathKey = s.pathKey
	for _, st := range a.plan.Statements {
		if st.Tag == "EXECUTE" {
			if key, ok := s.preparedPath[st.Prepared]; ok && key != s.pathKey {
				return s.Bindable(&Analysis{pathKey: key})
			}
		}
	}
	return nil
}
