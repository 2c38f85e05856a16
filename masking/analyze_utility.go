package masking

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// utilityTags lists the utility statements that pass when they read no
// PII, with their command tag.
var utilityTags = map[string]string{
	"CreateStmt": "CREATE TABLE", "CreateSchemaStmt": "CREATE SCHEMA",
	"CreateSeqStmt": "CREATE SEQUENCE", "AlterSeqStmt": "ALTER SEQUENCE",
	"CreateDomainStmt": "CREATE DOMAIN", "AlterDomainStmt": "ALTER DOMAIN",
	"CompositeTypeStmt": "CREATE TYPE", "CreateEnumStmt": "CREATE TYPE", "AlterEnumStmt": "ALTER TYPE",
	"CreateRangeStmt": "CREATE TYPE", "AlterTypeStmt": "ALTER TYPE", "DefineStmt": "CREATE",
	"DropStmt": "DROP", "IndexStmt": "CREATE INDEX", "CreateStatsStmt": "CREATE STATISTICS",
	"AlterStatsStmt": "ALTER STATISTICS", "AlterTableStmt": "ALTER TABLE",
	"ReplicaIdentityStmt": "ALTER TABLE", "AlterTableMoveAllStmt": "ALTER TABLE",
	"RenameStmt": "ALTER", "AlterObjectSchemaStmt": "ALTER", "AlterOwnerStmt": "ALTER",
	"AlterObjectDependsStmt": "ALTER", "AlterFunctionStmt": "ALTER FUNCTION",
	"CreatePolicyStmt": "CREATE POLICY", "AlterPolicyStmt": "ALTER POLICY",
	"CreateRoleStmt": "CREATE ROLE", "AlterRoleStmt": "ALTER ROLE", "DropRoleStmt": "DROP ROLE",
	"AlterRoleSetStmt": "ALTER ROLE", "CreatedbStmt": "CREATE DATABASE",
	"AlterDatabaseStmt": "ALTER DATABASE", "AlterDatabaseRefreshCollStmt": "ALTER DATABASE",
	"AlterDatabaseSetStmt": "ALTER DATABASE", "DropdbStmt": "DROP DATABASE",
	"CreateTableSpaceStmt": "CREATE TABLESPACE", "DropTableSpaceStmt": "DROP TABLESPACE",
	"AlterTableSpaceOptionsStmt": "ALTER TABLESPACE", "AlterDefaultPrivilegesStmt": "ALTER DEFAULT PRIVILEGES",
	"DropOwnedStmt": "DROP OWNED", "AlterCollationStmt": "ALTER COLLATION",
	"AlterTSDictionaryStmt": "ALTER TEXT SEARCH DICTIONARY", "AlterTSConfigurationStmt": "ALTER TEXT SEARCH CONFIGURATION",
	"DropUserMappingStmt": "DROP USER MAPPING", "DropSubscriptionStmt": "DROP SUBSCRIPTION",
	"AlterEventTrigStmt": "ALTER EVENT TRIGGER",
	// These change nothing in how names resolve.
	"ListenStmt": "LISTEN", "UnlistenStmt": "UNLISTEN", "NotifyStmt": "NOTIFY",
	"CheckPointStmt": "CHECKPOINT", "LockStmt": "LOCK TABLE", "TruncateStmt": "TRUNCATE TABLE",
	"GrantStmt": "GRANT", "GrantRoleStmt": "GRANT ROLE", "ConstraintsSetStmt": "SET CONSTRAINTS",
	"ClusterStmt": "CLUSTER", "VacuumStmt": "VACUUM", "ReindexStmt": "REINDEX",
	"RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW", "CommentStmt": "COMMENT",
	"SecLabelStmt": "SECURITY LABEL", "ReassignOwnedStmt": "REASSIGN OWNED",
}

// keepsCatalog lists the utility statements that cannot change how names
// resolve.
var keepsCatalog = map[string]bool{
	"ListenStmt": true, "UnlistenStmt": true, "NotifyStmt": true, "CheckPointStmt": true,
	"LockStmt": true, "TruncateStmt": true, "GrantStmt": true, "GrantRoleStmt": true,
	"ConstraintsSetStmt": true, "ClusterStmt": true, "VacuumStmt": true, "ReindexStmt": true,
	"RefreshMatViewStmt": true, "CommentStmt": true, "SecLabelStmt": true, "ReassignOwnedStmt": true,
}

// refusedStatements are refused outright: {construct, reason}.
var refusedStatements = map[string][2]string{
	"DoStmt":                     {"DO", "code that runs on its own"},
	"LoadStmt":                   {"LOAD", "code that runs on its own"},
	"AlterSystemStmt":            {"ALTER SYSTEM", "it changes the server's configuration"},
	"CreateTrigStmt":             {"CREATE TRIGGER", "code that runs on its own"},
	"CreateEventTrigStmt":        {"CREATE EVENT TRIGGER", "code that runs on its own"},
	"RuleStmt":                   {"CREATE RULE", "code that runs on its own"},
	"CreatePLangStmt":            {"CREATE LANGUAGE", "code that runs on its own"},
	"CreateCastStmt":             {"CREATE CAST", "it makes the server call a function implicitly"},
	"CreateTransformStmt":        {"CREATE TRANSFORM", "it makes the server call a function implicitly"},
	"CreateConversionStmt":       {"CREATE CONVERSION", "it makes the server call a function implicitly"},
	"CreateOpClassStmt":          {"CREATE OPERATOR CLASS", "it makes the server call a function implicitly"},
	"CreateOpFamilyStmt":         {"CREATE OPERATOR FAMILY", "it makes the server call a function implicitly"},
	"AlterOpFamilyStmt":          {"ALTER OPERATOR FAMILY", "it makes the server call a function implicitly"},
	"AlterOperatorStmt":          {"ALTER OPERATOR", "it makes the server call a function implicitly"},
	"CreateAmStmt":               {"CREATE ACCESS METHOD", "code that runs on its own"},
	"CreateFdwStmt":              {"CREATE FOREIGN DATA WRAPPER", "data could leave unmasked"},
	"AlterFdwStmt":               {"ALTER FOREIGN DATA WRAPPER", "data could leave unmasked"},
	"CreateForeignServerStmt":    {"CREATE SERVER", "a foreign table could read PII unmasked"},
	"AlterForeignServerStmt":     {"ALTER SERVER", "a foreign table could read PII unmasked"},
	"CreateForeignTableStmt":     {"CREATE FOREIGN TABLE", "a foreign table could read PII unmasked"},
	"ImportForeignSchemaStmt":    {"IMPORT FOREIGN SCHEMA", "a foreign table could read PII unmasked"},
	"CreateUserMappingStmt":      {"CREATE USER MAPPING", "a foreign table could read PII unmasked"},
	"AlterUserMappingStmt":       {"ALTER USER MAPPING", "a foreign table could read PII unmasked"},
	"CreateExtensionStmt":        {"CREATE EXTENSION", "code that runs on its own"},
	"AlterExtensionStmt":         {"ALTER EXTENSION", "code that runs on its own"},
	"AlterExtensionContentsStmt": {"ALTER EXTENSION", "code that runs on its own"},
	"CreatePublicationStmt":      {"CREATE PUBLICATION", "data could leave unmasked"},
	"AlterPublicationStmt":       {"ALTER PUBLICATION", "data could leave unmasked"},
	"CreateSubscriptionStmt":     {"CREATE SUBSCRIPTION", "data could arrive unmasked"},
	"AlterSubscriptionStmt":      {"ALTER SUBSCRIPTION", "data could arrive unmasked"},
}

// utility analyses a statement of utilityTags: every expression in it is
// analysed (functions, subqueries) with its own relation in scope, and
// reading PII anywhere is refused, since what DDL stores runs later.
func (a *analyzer) utility(n *pg.Node) StatementPlan {
	tag := utilityTag(n)
	a.checkUtility(n, tag)
	a.readRelations(n)
	sc := newScope(nil)
	for _, rv := range utilityRelations(n) {
		sc.items = append(sc.items, a.rangeVar(rv, sc))
	}
	a.refuseReads(tag, func() {
		for _, kid := range children(n) {
			a.value(kid, sc)
		}
	})
	return StatementPlan{Tag: tag, ChangesCatalog: !keepsCatalog[nodeType(n)]}
}

// readRelations marks the statement as reading the PII of every relation
// it names: the server's errors about them can quote their rows (a unique
// index built over duplicates, a materialized view refreshed with them),
// so they are scrubbed.
func (a *analyzer) readRelations(n *pg.Node) {
	var walk func(n *pg.Node)
	walk = func(n *pg.Node) {
		if rv := n.GetRangeVar(); rv != nil {
			if rel := a.relation(rv.GetSchemaname(), rv.GetRelname()); rel != nil {
				a.read(a.relationItem(rel).all())
			}
		}
		for _, kid := range children(n) {
			walk(kid)
		}
	}
	walk(n)
}

func utilityTag(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_DropStmt:
		return "DROP " + objectName(x.DropStmt.GetRemoveType())
	case *pg.Node_DefineStmt:
		return "CREATE " + objectName(x.DefineStmt.GetKind())
	case *pg.Node_GrantStmt:
		if !x.GrantStmt.GetIsGrant() {
			return "REVOKE"
		}
	case *pg.Node_GrantRoleStmt:
		if !x.GrantRoleStmt.GetIsGrant() {
			return "REVOKE ROLE"
		}
	case *pg.Node_VacuumStmt:
		if !x.VacuumStmt.GetIsVacuumcmd() {
			return "ANALYZE"
		}
	}
	return utilityTags[nodeType(n)]
}

func objectName(t pg.ObjectType) string {
	return strings.ReplaceAll(strings.TrimPrefix(t.String(), "OBJECT_"), "_", " ")
}

// utilityRelations gives the relations whose columns a statement's
// expressions refer to (an index's table, a policy's table...).
func utilityRelations(n *pg.Node) []*pg.RangeVar {
	switch x := n.GetNode().(type) {
	case *pg.Node_IndexStmt:
		return []*pg.RangeVar{x.IndexStmt.GetRelation()}
	case *pg.Node_CreatePolicyStmt:
		return []*pg.RangeVar{x.CreatePolicyStmt.GetTable()}
	case *pg.Node_AlterPolicyStmt:
		return []*pg.RangeVar{x.AlterPolicyStmt.GetTable()}
	case *pg.Node_AlterTableStmt:
		return []*pg.RangeVar{x.AlterTableStmt.GetRelation()}
	case *pg.Node_CreateStatsStmt:
		var out []*pg.RangeVar
		for _, r := range x.CreateStatsStmt.GetRelations() {
			out = append(out, r.GetRangeVar())
		}
		return out
	}
	return nil
}

// checkUtility applies the rules of particular utility statements.
func (a *analyzer) checkUtility(n *pg.Node, tag string) {
	switch x := n.GetNode().(type) {
	case *pg.Node_AlterTableStmt:
		a.refusePIIRelation(tag, x.AlterTableStmt.GetRelation())
	case *pg.Node_RenameStmt:
		if x.RenameStmt.GetRenameType() == pg.ObjectType_OBJECT_SCHEMA {
			a.refuse("ALTER SCHEMA ... RENAME", "the masking rules name tables by schema")
		}
		a.refusePIIRelation("ALTER ... RENAME", x.RenameStmt.GetRelation())
	case *pg.Node_AlterObjectSchemaStmt:
		a.refusePIIRelation("ALTER ... SET SCHEMA", x.AlterObjectSchemaStmt.GetRelation())
	case *pg.Node_AlterRoleSetStmt:
		a.checkSetting(x.AlterRoleSetStmt.GetSetstmt())
	case *pg.Node_AlterDatabaseSetStmt:
		a.checkSetting(x.AlterDatabaseSetStmt.GetSetstmt())
	case *pg.Node_DefineStmt:
		a.checkDefine(x.DefineStmt, tag)
	case *pg.Node_CreateRangeStmt:
		for _, p := range x.CreateRangeStmt.GetParams() {
			if name := p.GetDefElem().GetDefname(); name == "canonical" || name == "subtype_diff" {
				a.refuse("CREATE TYPE ... AS RANGE with a "+name+" function", "it makes the server call a function implicitly")
			}
		}
	}
}

// refusePIIRelation refuses altering a relation that holds PII: the rules
// name it, and renaming or detaching it would leave its values unmasked.
func (a *analyzer) refusePIIRelation(construct string, rv *pg.RangeVar) {
	if rv == nil {
		return
	}
	if it := a.rangeVar(rv, newScope(nil)); it.holdsPII() {
		a.refuse(construct+" on "+rv.GetRelname(), "the relation holds PII")
	}
}

// checkDefine allows collations, text search configurations and
// dictionaries and shell types; aggregates, operators and base types make
// the server call functions implicitly.
func (a *analyzer) checkDefine(d *pg.DefineStmt, tag string) {
	switch d.GetKind() {
	case pg.ObjectType_OBJECT_COLLATION, pg.ObjectType_OBJECT_TSCONFIGURATION, pg.ObjectType_OBJECT_TSDICTIONARY:
		return
	case pg.ObjectType_OBJECT_TYPE:
		if len(d.GetDefinition()) == 0 {
			return
		}
	}
	a.refuse(tag, "it makes the server call a function implicitly")
}

// copyStmt analyses COPY. COPY ... TO STDOUT returns rows the proxy masks;
// COPY to a file or program may not carry PII; COPY FROM writes what the
// client sends.
func (a *analyzer) copyStmt(c *pg.CopyStmt) StatementPlan {
	sp := StatementPlan{Tag: "COPY"}
	sc := newScope(nil)
	if c.GetIsFrom() {
		it := a.rangeVar(c.GetRelation(), sc)
		a.read(it.all()) // errors quote the rows written, and exclusion constraints the rows they meet
		sc.items = append(sc.items, it)
		a.pred(c.GetWhereClause(), sc, "COPY ... WHERE")
		return sp
	}
	out := a.copySource(c, sc)
	if c.GetFilename() != "" || c.GetIsProgram() {
		a.written(out.all(), "COPY TO a file or program")
		return sp
	}
	if out.open && out.holdsPII() {
		a.refuse("COPY of a masked result whose columns pgveil cannot count", "list the columns")
	}
	sp = withOutputs(sp, out)
	sp.Copy = a.copyFormat(c.GetOptions(), out.holdsPII())
	return sp
}

// copySource gives the rows a COPY TO reads: a query, or a relation's
// columns (those listed, in list order).
func (a *analyzer) copySource(c *pg.CopyStmt, sc *scope) *item {
	if q := c.GetQuery(); q != nil {
		if out := a.preparable(q); out != nil {
			return out
		}
		return &item{}
	}
	it := a.rangeVar(c.GetRelation(), sc)
	names := stringFields(c.GetAttlist())
	if len(names) == 0 {
		a.read(it.all())
		return it
	}
	out := &item{}
	for _, name := range names {
		l, _ := it.find(name)
		out.cols = append(out.cols, column{name: name, lin: a.read(l)})
	}
	return out
}

// copyFormat reads the COPY options into the format the proxy parses.
// Binary data and a client encoding other than the session's cannot be
// masked field by field.
func (a *analyzer) copyFormat(opts []*pg.Node, masked bool) *CopyFormat {
	f := &CopyFormat{Delimiter: '\t', Null: `\N`}
	var delim, quote, escape, null *string
	for _, o := range opts {
		d := o.GetDefElem()
		arg := defString(d.GetArg())
		switch d.GetDefname() {
		case "format":
			f.CSV = strings.EqualFold(arg, "csv")
			f.Binary = strings.EqualFold(arg, "binary")
			if f.Binary && masked {
				a.refuse("COPY ... (FORMAT binary) of a masked result", "use text or csv")
			}
		case "delimiter":
			delim = &arg
		case "quote":
			quote = &arg
		case "escape":
			escape = &arg
		case "null":
			null = &arg
		case "header":
			f.Header = defBool(d.GetArg())
		case "encoding":
			if masked {
				a.refuse("COPY ... (ENCODING) of a masked result", "set client_encoding instead")
			}
		}
	}
	return finishCopyFormat(f, delim, quote, escape, null)
}

func finishCopyFormat(f *CopyFormat, delim, quote, escape, null *string) *CopyFormat {
	if f.CSV {
		f.Delimiter, f.Quote, f.Null = ',', '"', ""
	}
	if delim != nil && *delim != "" {
		f.Delimiter = (*delim)[0]
	}
	if null != nil {
		f.Null = *null
	}
	if !f.CSV {
		return f
	}
	if quote != nil && *quote != "" {
		f.Quote = (*quote)[0]
	}
	f.Escape = f.Quote
	if escape != nil && *escape != "" {
		f.Escape = (*escape)[0]
	}
	return f
}

// defString reads a DefElem argument as text.
func defString(n *pg.Node) string {
	switch x := n.GetNode().(type) {
	case *pg.Node_String_:
		return x.String_.GetSval()
	case *pg.Node_Integer:
		return itoa(int(x.Integer.GetIval()))
	case *pg.Node_Boolean:
		if x.Boolean.GetBoolval() {
			return "true"
		}
		return "false"
	}
	return ""
}

// defBool reads a boolean DefElem argument; no argument means true.
func defBool(n *pg.Node) bool {
	if n.GetNode() == nil {
		return true
	}
	switch strings.ToLower(defString(n)) {
	case "true", "on", "1", "yes", "match":
		return true
	}
	return false
}
