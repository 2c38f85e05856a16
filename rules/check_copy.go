package rules

// A masked copy of a database (pg_dump through pgveil, restored elsewhere)
// holds the masked values. A mask that gives many rows one value breaks the
// restore of a column whose values must differ, and a mask that writes NULL
// breaks it on a NOT NULL column; checkRestorable warns about both. These
// are warnings: the proxy masks correctly either way, only a copy fails.

// constantMask reports whether a mask gives every row one value (NULL for
// nullify, and for redact on a type without a redacted text). Masks that
// keep part of a value (partial, email, generalize) may give two rows one
// value too, but not as a rule; the README says so.
func constantMask(s Strategy) bool {
	switch s.Kind {
	case Redact, Blank, Text, Nullify:
		return true
	}
	return false
}

// writesNullMask reports whether a mask gives NULL (nullify, and redact on
// a type that has no redacted text).
func writesNullMask(s Strategy, a *attribute) bool {
	return s.Kind == Nullify || (s.Kind == Redact && !a.isText())
}

// checkRestorable warns about the masks of t that make a masked copy fail
// to restore: a constant mask on every column of a primary key, unique
// constraint or unique index, or a NULL on a NOT NULL column.
func (c *checker) checkRestorable(key string, t *Table, rel *relation) {
	for _, name := range sortedKeys(t.Columns) {
		col, a := t.Columns[name], rel.cols[name]
		if col == nil || a == nil {
			continue
		}
		ckey := key + ".columns." + name + ".mask"
		if writesNullMask(col.Mask, a) && (a.notNull || a.notNullDomain != "") {
			c.warnf(ckey, "%s gives NULL, but %s is NOT NULL: a masked copy (pg_dump through pgveil) will not restore; a mask that keeps a value (pseudonym for text) fits", col.Mask, name)
			continue
		}
		if !constantMask(col.Mask) {
			continue
		}
		for _, u := range rel.uniques {
			if !u.covers(a.num) || !allConstant(t, rel, u) || (writesNullMask(col.Mask, a) && !u.nullsNotDistinct) {
				continue
			}
			c.warnf(ckey, "%s gives every row the same value, but %s is in %s: a masked copy (pg_dump through pgveil) will not restore; pseudonym keeps the values unique (one per value, under %s)",
				col.Mask, name, u.describe(), PseudonymKeyEnv)
			break
		}
	}
}

// allConstant reports whether every column of a unique index has a
// constant mask, so that the masked rows collide.
// An expression's values are computed from the masked ones, so one over
// such columns collides too.
func allConstant(t *Table, rel *relation, u uniqueIndex) bool {
	for _, num := range append(u.keyCols, u.exprCols...) {
		if num == 0 {
			continue // an expression's slot in indkey; exprCols has its columns
		}
		name := rel.colName(num)
		col := t.Columns[name]
		if col == nil || !constantMask(col.Mask) {
			return false
		}
	}
	return true
}

// colName returns the name of column num, "" when unknown.
func (r *relation) colName(num int16) string {
	for name, a := range r.cols {
		if a.num == num {
			return name
		}
	}
	return ""
}
