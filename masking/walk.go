package masking

import (
	"reflect"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// kids collects child nodes for children (walk_gen.go).
type kids []*pg.Node

func (k *kids) add(ns ...*pg.Node) {
	for _, n := range ns {
		if n.GetNode() != nil {
			*k = append(*k, n)
		}
	}
}

// nodeClass says how the analyser treats a node type.
type nodeClass int

const (
	nodeUnclassified nodeClass = iota // not classified: rejected
	nodeStmt                          // a statement: see statement()
	nodeValue                         // an expression: see value(); derived from its children unless handled
	nodePart                          // a clause or definition, walked with its statement
	nodeRejected                      // never produced by the raw parser, or refused: rejected
)

// nodeClasses classifies every node type of pg_query's Node oneof, by the
// name of its message type. TestEveryNodeTypeClassified fails when a
// pg_query upgrade brings a type that is not listed here; until it is
// listed, the analyser rejects it.
var nodeClasses = classify(map[nodeClass]string{
	nodeStmt: `RawStmt InsertStmt DeleteStmt UpdateStmt MergeStmt SelectStmt
		ReturnStmt CreateSchemaStmt AlterTableStmt ReplicaIdentityStmt
		AlterCollationStmt AlterDomainStmt GrantStmt GrantRoleStmt
		AlterDefaultPrivilegesStmt CopyStmt VariableSetStmt VariableShowStmt CreateStmt
		CreateTableSpaceStmt DropTableSpaceStmt AlterTableSpaceOptionsStmt
		AlterTableMoveAllStmt CreateExtensionStmt AlterExtensionStmt
		AlterExtensionContentsStmt CreateFdwStmt AlterFdwStmt CreateForeignServerStmt
		AlterForeignServerStmt CreateForeignTableStmt CreateUserMappingStmt
		AlterUserMappingStmt DropUserMappingStmt ImportForeignSchemaStmt
		CreatePolicyStmt AlterPolicyStmt CreateAmStmt CreateTrigStmt CreateEventTrigStmt
		AlterEventTrigStmt CreatePLangStmt CreateRoleStmt AlterRoleStmt AlterRoleSetStmt
		DropRoleStmt CreateSeqStmt AlterSeqStmt DefineStmt CreateDomainStmt
		CreateOpClassStmt CreateOpFamilyStmt AlterOpFamilyStmt DropStmt TruncateStmt
		CommentStmt SecLabelStmt DeclareCursorStmt ClosePortalStmt FetchStmt IndexStmt
		CreateStatsStmt AlterStatsStmt CreateFunctionStmt AlterFunctionStmt DoStmt
		CallStmt RenameStmt AlterObjectDependsStmt AlterObjectSchemaStmt AlterOwnerStmt
		AlterOperatorStmt AlterTypeStmt RuleStmt NotifyStmt ListenStmt UnlistenStmt
		TransactionStmt CompositeTypeStmt CreateEnumStmt CreateRangeStmt AlterEnumStmt
		ViewStmt LoadStmt CreatedbStmt AlterDatabaseStmt AlterDatabaseRefreshCollStmt
		AlterDatabaseSetStmt DropdbStmt AlterSystemStmt ClusterStmt VacuumStmt
		ExplainStmt CreateTableAsStmt RefreshMatViewStmt CheckPointStmt DiscardStmt
		LockStmt ConstraintsSetStmt ReindexStmt CreateConversionStmt CreateCastStmt
		CreateTransformStmt PrepareStmt ExecuteStmt DeallocateStmt DropOwnedStmt
		ReassignOwnedStmt AlterTSDictionaryStmt AlterTSConfigurationStmt
		CreatePublicationStmt AlterPublicationStmt CreateSubscriptionStmt
		AlterSubscriptionStmt DropSubscriptionStmt`,
	nodeValue: `ColumnRef ParamRef A_Const A_Expr TypeCast CollateClause FuncCall
		A_Star A_Indices A_Indirection A_ArrayExpr NamedArgExpr BoolExpr SubLink
		CaseExpr CaseWhen RowExpr CoalesceExpr MinMaxExpr SQLValueFunction XmlExpr
		XmlSerialize NullTest BooleanTest GroupingFunc SetToDefault CurrentOfExpr
		MergeSupportFunc JsonFormat JsonReturning JsonValueExpr JsonBehavior
		JsonIsPredicate JsonOutput JsonArgument JsonFuncExpr JsonKeyValue
		JsonParseExpr JsonScalarExpr JsonSerializeExpr JsonObjectConstructor
		JsonArrayConstructor JsonArrayQueryConstructor JsonAggConstructor
		JsonObjectAgg JsonArrayAgg Integer Float Boolean String BitString List`,
	nodePart: `Alias RangeVar IntoClause JoinExpr TypeName RoleSpec ResTarget
		MultiAssignRef SortBy WindowDef RangeSubselect RangeFunction RangeTableFunc
		RangeTableFuncCol RangeTableSample ColumnDef TableLikeClause IndexElem DefElem
		LockingClause PartitionElem PartitionSpec PartitionBoundSpec
		PartitionRangeDatum SinglePartitionSpec PartitionCmd GroupingSet WithClause
		InferClause OnConflictClause CTESearchClause CTECycleClause CommonTableExpr
		MergeWhenClause TriggerTransition JsonTablePathSpec JsonTable JsonTableColumn
		AlterTableCmd ObjectWithArgs AccessPriv Constraint StatsElem CreateOpClassItem
		FunctionParameter PublicationTable PublicationObjSpec VacuumRelation`,
	// Nodes of analysed query trees, plans and PL/pgSQL: the raw parser never
	// produces them, so meeting one means the input is not what it seems.
	nodeRejected: `TableFunc Var Param Aggref WindowFunc WindowFuncRunCondition
		SubscriptingRef FuncExpr OpExpr DistinctExpr NullIfExpr ScalarArrayOpExpr
		SubPlan AlternativeSubPlan FieldSelect FieldStore RelabelType CoerceViaIO
		ArrayCoerceExpr ConvertRowtypeExpr CollateExpr CaseTestExpr ArrayExpr
		RowCompareExpr JsonConstructorExpr JsonExpr JsonTablePath JsonTablePathScan
		JsonTableSiblingJoin CoerceToDomain CoerceToDomainValue NextValueExpr
		InferenceElem TargetEntry RangeTblRef FromExpr OnConflictExpr Query
		RangeTblEntry RTEPermissionInfo RangeTblFunction TableSampleClause
		WithCheckOption SortGroupClause WindowClause RowMarkClause MergeAction
		IntList OidList SetOperationStmt PLAssignStmt InlineCodeBlock CallContext`,
})

func classify(lists map[nodeClass]string) map[string]nodeClass {
	m := map[string]nodeClass{}
	for c, names := range lists {
		for _, name := range strings.Fields(names) {
			m[name] = c
		}
	}
	return m
}

// nodeType names the message type of n ("SelectStmt"), "" for an empty node.
func nodeType(n *pg.Node) string {
	v := n.GetNode()
	if v == nil {
		return ""
	}
	return reflect.ValueOf(v).Elem().Field(0).Type().Elem().Name()
}

// nodeClassOf classifies n.
func nodeClassOf(n *pg.Node) nodeClass { return nodeClasses[nodeType(n)] }
