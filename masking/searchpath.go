package masking

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// This file is the analyser's side of search_path: which statements may
// change it, and what value they set. session_path.go follows the value
// with the session's transactions. See doc.go, "search_path".

// pathKind is what a statement does to search_path.
type pathKind uint8

const (
	pathNone  pathKind = iota
	pathSet            // SET, set_config(..., false): lasts if the transaction commits
	pathLocal          // SET LOCAL, set_config(..., true): until the transaction ends
	pathReset          // RESET, SET ... TO DEFAULT, DISCARD ALL: the value at login
	pathResetLocal
)

// txnKind is a transaction control statement, as the path follows it.
type txnKind uint8

const (
	txnNone txnKind = iota
	txnBegin
	txnCommit // COMMIT, END, PREPARE TRANSACTION: a failed transaction rolls back instead
	txnRollback
	txnSavepoint
	txnRelease
	txnRollbackTo
)

// txnOp is a transaction statement with its savepoint name.
type txnOp struct {
	kind      txnKind
	savepoint string
	chain     bool // AND CHAIN: a new transaction starts at once
}

// maxIdentifier is NAMEDATALEN - 1: the server truncates longer names.
const maxIdentifier = 63

// splitIdentifiers splits a list setting the way the server's
// SplitIdentifierString does (varlena.c): names separated by commas,
// whitespace around them ignored, "quoted" names kept as written (with ""
// for a quote), others lowercased; every name truncated to 63 bytes. A
// list the server would refuse is an error.
func splitIdentifiers(s string) ([]string, error) {
	var out []string
	s = strings.TrimLeft(s, spaces)
	if s == "" {
		return nil, nil
	}
	for {
		name, rest, err := nextIdentifier(s)
		if err != nil {
			return nil, err
		}
		out = append(out, truncateIdentifier(name))
		rest = strings.TrimLeft(rest, spaces)
		if rest == "" {
			return out, nil
		}
		if rest[0] != ',' {
			return nil, errors.New("invalid list syntax")
		}
		s = strings.TrimLeft(rest[1:], spaces)
	}
}

// spaces are the characters the server's scanner_isspace skips.
const spaces = " \t\n\r\f\v"

// nextIdentifier reads one quoted or unquoted name off the front of s.
func nextIdentifier(s string) (name, rest string, err error) {
	if s != "" && s[0] == '"' {
		var b strings.Builder
		for i := 1; i < len(s); i++ {
			if s[i] != '"' {
				b.WriteByte(s[i])
				continue
			}
			if i+1 < len(s) && s[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			return b.String(), s[i+1:], nil
		}
		return "", "", errors.New("unterminated quoted name")
	}
	end := strings.IndexAny(s, spaces+",")
	if end < 0 {
		end = len(s)
	}
	if end == 0 {
		return "", "", errors.New("empty name")
	}
	if strings.ContainsAny(s[:end], `"`) || !isASCII(s[:end]) {
		// The server keeps a quote inside an unquoted name, and may
		// lowercase other letters in a single-byte encoding: refused
		// rather than guessed.
		return "", "", errors.New("a quote or a non-ASCII letter in an unquoted name")
	}
	return lowerASCII(s[:end]), s[end:], nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// lowerASCII lowercases A-Z only, as downcase_identifier does for a
// multibyte server encoding.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// truncateIdentifier clips a name to 63 bytes without splitting a UTF-8
// character (truncate_identifier, pg_mbcliplen).
func truncateIdentifier(s string) string {
	if len(s) <= maxIdentifier {
		return s
	}
	n := maxIdentifier
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// searchPath turns a search_path setting into the schemas searched for
// relations and functions, as the server does (recomputeNamespacePath):
// "$user" stands for the login role (a masked session cannot change
// role), pg_catalog comes first unless listed, a name listed twice counts
// once. Schemas that do not exist, or that the role may not use, are
// skipped by the catalog queries. pg_temp is left out: see pgcatalog.go
// (ownRelation) for why resolving past it only masks more.
func searchPath(setting, user string) ([]string, error) {
	names, err := splitIdentifiers(setting)
	if err != nil {
		return nil, fmt.Errorf("pgveil: search_path %w", err)
	}
	return schemasOf(names, user), nil
}

// schemasOf expands a list of search_path entries into schemas.
func schemasOf(names []string, user string) []string {
	var path []string
	for _, s := range names {
		switch {
		case s == "$user":
			s = user
		case s == "pg_temp" || isTempSchema(s):
			continue
		}
		if !containsString(path, s) {
			path = append(path, s)
		}
	}
	if containsString(path, "pg_catalog") {
		return path
	}
	return append([]string{"pg_catalog"}, path...)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkPathSet validates SET search_path's arguments and returns what the
// statement does to the path. Each argument is one name as written: the
// server quotes it into the setting (GUC_LIST_QUOTE), so 'a, b' is one
// schema named "a, b".
func (a *analyzer) checkPathSet(s *pg.VariableSetStmt) pathKind {
	local := s.GetIsLocal()
	switch s.GetKind() {
	case pg.VariableSetKind_VAR_RESET, pg.VariableSetKind_VAR_SET_DEFAULT:
		if local {
			return pathResetLocal
		}
		return pathReset
	case pg.VariableSetKind_VAR_SET_VALUE:
	default:
		a.refuseAs(ReasonIdentity, "this form of SET search_path", "")
	}
	if _, err := setArgNames(s); err != nil {
		a.refuseAs(ReasonIdentity, "SET search_path to something other than names", "")
	}
	if local {
		return pathLocal
	}
	return pathSet
}

// setArgNames reads the names SET search_path gives.
func setArgNames(s *pg.VariableSetStmt) ([]string, error) {
	var names []string
	for _, arg := range s.GetArgs() {
		c := arg.GetAConst()
		if c == nil || c.GetSval() == nil {
			return nil, errors.New("not a name")
		}
		names = append(names, truncateIdentifier(c.GetSval().GetSval()))
	}
	return names, nil
}

// pathCall returns the set_config call of a text that is exactly one
// SELECT pg_catalog.set_config('search_path', '<value>', <true|false>),
// alone: the only form of set_config that may change search_path. Any
// other place (a WHERE clause, a CASE branch, a second row, a later
// statement of the text) could run it a number of times, or not at all,
// that the analyser cannot know.
func pathCall(stmts []*pg.RawStmt) *pg.FuncCall {
	if len(stmts) != 1 {
		return nil
	}
	sel := stmts[0].GetStmt().GetSelectStmt()
	if sel == nil || len(sel.GetTargetList()) != 1 || len(sel.GetFromClause()) != 0 || sel.GetWhereClause() != nil ||
		sel.GetHavingClause() != nil || len(sel.GetGroupClause()) != 0 || len(sel.GetValuesLists()) != 0 ||
		sel.GetOp() != pg.SetOperation_SETOP_NONE || sel.GetWithClause() != nil || sel.GetLimitCount() != nil ||
		sel.GetLimitOffset() != nil || len(sel.GetDistinctClause()) != 0 || sel.GetIntoClause() != nil ||
		len(sel.GetSortClause()) != 0 || len(sel.GetLockingClause()) != 0 || len(sel.GetWindowClause()) != 0 {
		return nil
	}
	fc := sel.GetTargetList()[0].GetResTarget().GetVal().GetFuncCall()
	if fc == nil || fc.GetOver() != nil || fc.GetAggStar() || fc.GetAggDistinct() || fc.GetFuncVariadic() ||
		fc.GetAggFilter() != nil || len(fc.GetAggOrder()) != 0 {
		return nil
	}
	if _, _, err := pathCallArgs(fc); err != nil {
		return nil
	}
	return fc
}

// pathCallArgs reads set_config('search_path', value, is_local) with
// constant arguments.
func pathCallArgs(fc *pg.FuncCall) (value string, local bool, err error) {
	args := fc.GetArgs()
	if schema, name := funcName(fc.GetFuncname()); name != "set_config" || (schema != "" && schema != "pg_catalog") {
		return "", false, errors.New("not set_config")
	}
	if len(args) != 3 || !strings.EqualFold(args[0].GetAConst().GetSval().GetSval(), "search_path") {
		return "", false, errors.New("not search_path")
	}
	v := args[1].GetAConst().GetSval()
	b := args[2].GetAConst().GetBoolval()
	if v == nil || b == nil {
		return "", false, errors.New("not constants")
	}
	if _, err := splitIdentifiers(v.GetSval()); err != nil {
		return "", false, err
	}
	return v.GetSval(), b.GetBoolval(), nil
}

// pgSettingsName returns the setting a
// SELECT set_config(name, <value>, <bool>) FROM pg_settings WHERE name = '<constant>'
// sets (pg_dump's way of setting restrict_nonsystem_relation_kind only
// where the server has it), or "" when the text has another shape.
func (a *analyzer) pgSettingsName(stmts []*pg.RawStmt) string {
	if len(stmts) != 1 {
		return ""
	}
	sel := stmts[0].GetStmt().GetSelectStmt()
	if sel == nil || len(sel.GetTargetList()) != 1 || len(sel.GetFromClause()) != 1 {
		return ""
	}
	rv := sel.GetFromClause()[0].GetRangeVar()
	if rv == nil || rv.GetRelname() != "pg_settings" || (rv.GetSchemaname() != "" && rv.GetSchemaname() != "pg_catalog") {
		return ""
	}
	fc := sel.GetTargetList()[0].GetResTarget().GetVal().GetFuncCall()
	if fc == nil || len(fc.GetArgs()) == 0 || !isNameColumn(fc.GetArgs()[0]) {
		return ""
	}
	w := sel.GetWhereClause().GetAExpr()
	if w == nil || w.GetKind() != pg.A_Expr_Kind_AEXPR_OP || len(w.GetName()) != 1 ||
		w.GetName()[0].GetString_().GetSval() != "=" || !isNameColumn(w.GetLexpr()) {
		return ""
	}
	c := w.GetRexpr().GetAConst().GetSval()
	if c == nil {
		return ""
	}
	if rel, err := a.cat.Relation(rv.GetSchemaname(), "pg_settings"); err != nil || rel == nil || rel.Schema != "pg_catalog" {
		return ""
	}
	return strings.ToLower(c.GetSval())
}

// isNameColumn reports whether n is the column reference name (or
// pg_settings.name).
func isNameColumn(n *pg.Node) bool {
	f := stringFields(n.GetColumnRef().GetFields())
	return len(f) == 1 && f[0] == "name" || len(f) == 2 && f[0] == "pg_settings" && f[1] == "name"
}

// txnOf reads a transaction statement.
func txnOf(t *pg.TransactionStmt) txnOp {
	op := txnOp{savepoint: t.GetSavepointName(), chain: t.GetChain()}
	switch t.GetKind() {
	case pg.TransactionStmtKind_TRANS_STMT_BEGIN, pg.TransactionStmtKind_TRANS_STMT_START:
		op.kind = txnBegin
	case pg.TransactionStmtKind_TRANS_STMT_COMMIT, pg.TransactionStmtKind_TRANS_STMT_PREPARE:
		op.kind = txnCommit
	case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		op.kind = txnRollback
	case pg.TransactionStmtKind_TRANS_STMT_SAVEPOINT:
		op.kind = txnSavepoint
	case pg.TransactionStmtKind_TRANS_STMT_RELEASE:
		op.kind = txnRelease
	case pg.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		op.kind = txnRollbackTo
	}
	return op
}

// pathValues returns, per statement of sql, the search_path entries a
// SET or set_config statement gives (nil for others).
func pathValues(sql string) ([][]string, error) {
	tree, err := pg.Parse(sql)
	if err != nil {
		return nil, err
	}
	out := make([][]string, len(tree.GetStmts()))
	for i, raw := range tree.GetStmts() {
		if s := raw.GetStmt().GetVariableSetStmt(); s != nil {
			if out[i], err = setArgNames(s); err != nil {
				return nil, err
			}
			continue
		}
		if fc := pathCall(tree.GetStmts()[i : i+1]); fc != nil {
			v, _, _ := pathCallArgs(fc)
			if out[i], err = splitIdentifiers(v); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// pathSetConfig accepts set_config of search_path when it is the text's
// pathCall, and notes what it does to the path.
func (a *analyzer) pathSetConfig(fc *pg.FuncCall) {
	if fc == nil || fc != a.pathCall || a.views > 0 {
		a.refuseAs(ReasonIdentity, "set_config of search_path here",
			"only SELECT pg_catalog.set_config('search_path', '<schemas>', false|true) alone in its query, or SET search_path, is followed")
	}
	_, local, _ := pathCallArgs(fc)
	a.st.path = pathSet
	if local {
		a.st.path = pathLocal
	}
}

// roleSetting reports whether s is the setting of an ALTER ROLE or ALTER
// DATABASE ... SET: it applies from the next login, which reads it.
func roleSetting(top *pg.Node, s *pg.VariableSetStmt) bool {
	return s == top.GetAlterRoleSetStmt().GetSetstmt() || s == top.GetAlterDatabaseSetStmt().GetSetstmt()
}

// pathSetStmt follows SET search_path. The same statement in a function's
// SET clause is refused: the function's body would resolve names through
// a path the analyser did not see it with. In ALTER ROLE or DATABASE it
// changes nothing now.
func (a *analyzer) pathSetStmt(s *pg.VariableSetStmt) {
	switch {
	case roleSetting(a.top, s):
	case s != a.top.GetVariableSetStmt():
		a.refuseAs(ReasonIdentity, "SET search_path of a function", "schema-qualify the names in its body instead")
	default:
		a.st.path = a.checkPathSet(s)
	}
}

// viewCatalog is a Catalog that reads view definitions through another
// path than the session's: a view's names were resolved when it was
// created, and its definition text names them for one fixed path.
type viewCatalog interface {
	ForViews() Catalog
}
