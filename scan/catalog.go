package scan

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
)

// Table is what scan reads of one table from the catalog.
type Table struct {
	Name    string // schema.name
	Schema  string
	Rel     string
	Kind    byte     // pg_class.relkind: r, p (partitioned) or m (materialized view)
	Rows    float64  // the planner's estimate (pg_class.reltuples, summed over partitions); < 0 when unknown
	Key     []string // the columns of the primary key, in order; empty when none
	Marker  string   // a timestamp, timestamptz or boolean column named anonymized_at; "" when none
	Columns []*Column
	oid     uint32
}

// Column is one column of a Table.
type Column struct {
	Name    string
	Type    string // as format_type gives it
	Class   TypeClass
	MaxLen  int  // the limit of varchar(n) or char(n); 0 when none
	NotNull bool // NOT NULL, on the column or a domain of its type
	// Unique is set when a unique index (or the primary key or a unique
	// constraint) covers the column, alone or with others;
	// NullsNotDistinct when one of those treats NULLs as equal.
	Unique, NullsNotDistinct bool
	// Key is set for a column of the primary key or of a foreign key
	// (either end): such columns are never anonymized.
	Key bool
	num int16
}

// catalogTablesSQL lists the tables to scan: ordinary, partitioned (not
// their partitions: rules are declared on the parent) and materialized
// views, outside the system schemas and pgveil's own.
const catalogTablesSQL = `
SELECT c.oid, n.nspname, c.relname, c.relkind::text,
       CASE WHEN c.relkind = 'p' THEN COALESCE((
           SELECT sum(GREATEST(lc.reltuples, 0)) FROM pg_catalog.pg_partition_tree(c.oid) pt
           JOIN pg_catalog.pg_class lc ON lc.oid = pt.relid WHERE pt.isleaf), -1)
       ELSE c.reltuples END::float8
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgveil') AND n.nspname NOT LIKE 'pg\_%'
  AND (cardinality($1::text[]) = 0 OR n.nspname = ANY ($1))
ORDER BY 2, 3`

// catalogColumnsSQL reads the columns of the tables with their base types
// (domains followed down), as rules.Check does, and whether they take part
// in a primary key, a foreign key or a unique index.
const catalogColumnsSQL = `
WITH RECURSIVE chain(relid, attnum, typid, typmod, notnull_domain) AS (
    SELECT a.attrelid, a.attnum, a.atttypid, a.atttypmod, false
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = ANY ($1) AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
    SELECT ch.relid, ch.attnum, t.typbasetype, CASE WHEN ch.typmod = -1 THEN t.typtypmod ELSE ch.typmod END,
           ch.notnull_domain OR t.typnotnull
    FROM chain ch JOIN pg_catalog.pg_type t ON t.oid = ch.typid
    WHERE t.typtype = 'd'
)
SELECT a.attrelid, a.attname, a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod),
       bn.nspname, bt.typname, ch.typmod, a.attnotnull OR ch.notnull_domain,
       EXISTS (SELECT FROM pg_catalog.pg_constraint k
               WHERE (k.contype IN ('p', 'f') AND k.conrelid = a.attrelid AND a.attnum = ANY (k.conkey))
                  OR (k.contype = 'f' AND k.confrelid = a.attrelid AND a.attnum = ANY (k.confkey)))
FROM chain ch
JOIN pg_catalog.pg_type bt ON bt.oid = ch.typid AND bt.typtype <> 'd'
JOIN pg_catalog.pg_namespace bn ON bn.oid = bt.typnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = ch.relid AND a.attnum = ch.attnum
ORDER BY a.attrelid, a.attnum`

// catalogUniqueSQL lists the columns each unique index covers, as a key
// column or in an expression.
const catalogUniqueSQL = `
SELECT i.indrelid, cols.attnum, COALESCE((pg_catalog.to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false)
FROM pg_catalog.pg_index i
CROSS JOIN LATERAL (
    SELECT k FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) k WHERE k > 0
    UNION
    SELECT d.refobjsubid::int2 FROM pg_catalog.pg_depend d
    WHERE i.indexprs IS NOT NULL AND d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = i.indexrelid
      AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = i.indrelid AND d.refobjsubid > 0
) cols(attnum)
WHERE i.indrelid = ANY ($1) AND i.indisunique`

// catalogPrimarySQL lists the primary keys' columns, in key order.
const catalogPrimarySQL = `
SELECT i.indrelid, ARRAY(SELECT a.attname::text FROM unnest((i.indkey::int2[])[0:i.indnkeyatts - 1]) WITH ORDINALITY k(num, ord)
                         JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num ORDER BY k.ord)
FROM pg_catalog.pg_index i
WHERE i.indrelid = ANY ($1) AND i.indisprimary`

// readCatalog reads the tables of the given schemas (every schema but the
// system ones when empty).
func readCatalog(ctx context.Context, conn *pgx.Conn, schemas []string) ([]*Table, error) {
	if schemas == nil {
		schemas = []string{}
	}
	rows, err := conn.Query(ctx, catalogTablesSQL, schemas)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Table, error) {
		t := &Table{}
		var kind string
		err := r.Scan(&t.oid, &t.Schema, &t.Rel, &kind, &t.Rows)
		t.Name, t.Kind = t.Schema+"."+t.Rel, kind[0]
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	byOID := make(map[uint32]*Table, len(tables))
	oids := make([]uint32, len(tables))
	for i, t := range tables {
		byOID[t.oid], oids[i] = t, t.oid
	}
	if err := readColumns(ctx, conn, oids, byOID); err != nil {
		return nil, fmt.Errorf("reading columns: %w", err)
	}
	if err := readUniques(ctx, conn, oids, byOID); err != nil {
		return nil, fmt.Errorf("reading unique indexes: %w", err)
	}
	for _, t := range tables {
		t.Marker = markerOf(t)
	}
	return tables, nil
}

func readColumns(ctx context.Context, conn *pgx.Conn, oids []uint32, byOID map[uint32]*Table) error {
	rows, err := conn.Query(ctx, catalogColumnsSQL, oids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var oid uint32
		var baseSchema, base string
		var typmod int32
		c := &Column{}
		if err := rows.Scan(&oid, &c.Name, &c.num, &c.Type, &baseSchema, &base, &typmod, &c.NotNull, &c.Key); err != nil {
			return err
		}
		c.Class = ClassOf(baseSchema, base)
		if baseSchema == "pg_catalog" && (base == "varchar" || base == "bpchar") && typmod >= 4 {
			c.MaxLen = int(typmod - 4) // VARHDRSZ
		}
		byOID[oid].Columns = append(byOID[oid].Columns, c)
	}
	return rows.Err()
}

func readUniques(ctx context.Context, conn *pgx.Conn, oids []uint32, byOID map[uint32]*Table) error {
	rows, err := conn.Query(ctx, catalogUniqueSQL, oids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var oid uint32
		var num int16
		var nnd bool
		if err := rows.Scan(&oid, &num, &nnd); err != nil {
			return err
		}
		t := byOID[oid]
		i := slices.IndexFunc(t.Columns, func(c *Column) bool { return c.num == num })
		if i < 0 {
			continue
		}
		c := t.Columns[i]
		c.Unique = true
		c.NullsNotDistinct = c.NullsNotDistinct || nnd
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return readPrimaryKeys(ctx, conn, oids, byOID)
}

// readPrimaryKeys sets each table's Key to its primary key's columns.
func readPrimaryKeys(ctx context.Context, conn *pgx.Conn, oids []uint32, byOID map[uint32]*Table) error {
	rows, err := conn.Query(ctx, catalogPrimarySQL, oids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var oid uint32
		var cols []string
		if err := rows.Scan(&oid, &cols); err != nil {
			return err
		}
		byOID[oid].Key = cols
	}
	return rows.Err()
}

// markerOf finds a column that can serve as anonymized_marker.
func markerOf(t *Table) string {
	for _, c := range t.Columns {
		if (c.Name == "anonymized_at" || c.Name == "anonymised_at") && (c.Class == TimestampType || c.Type == "boolean") {
			return c.Name
		}
	}
	return ""
}
