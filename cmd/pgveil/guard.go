package main

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/anonymize"
	"github.com/pgveil/pgveil/masking"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rules"
)

// guard adapts masking.Guard and package anonymize to the proxy's Guard
// interface. It is the only place where these packages meet the proxy.
type guard struct{ g *masking.Guard }

// Open gives masked sessions the masking policy, and sessions of roles in
// roles.anonymize a policy that runs ANONYMIZE (and, when they are not
// masked, passes everything else untouched and unparsed).
func (g guard) Open(info proxy.SessionInfo, exec func(string) ([][]string, error)) (proxy.Policy, error) {
	s, err := g.g.Open(info.User, info.Database, info.Params, exec)
	if err != nil {
		return nil, err
	}
	cfg := g.g.Config()
	p := policy{g: g.g, s: s, user: info.User}
	if !cfg.MayAnonymize(info.User) {
		if s == nil {
			return nil, nil
		}
		return p, nil
	}
	if err := p.openAnonymize(cfg, info.Database, exec); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// openAnonymize readies a session that may run ANONYMIZE: its search
// path, and its database with the audit log there. When the log cannot be
// made, the session opens anyway and its ANONYMIZE fails saying why.
func (p *policy) openAnonymize(cfg *rules.Config, database string, exec func(string) ([][]string, error)) error {
	if err := p.forAnonymize(database, exec); err != nil {
		return err
	}
	p.mayAnonymize = true
	p.auditErr = p.db.AuditLog(cfg.Roles.Anonymize)
	return nil
}

// forAnonymize gives the policy what planning an ANONYMIZE needs: the
// search path and the database, taken (ownDB) when the masked session
// does not hold it already.
func (p *policy) forAnonymize(database string, exec func(string) ([][]string, error)) error {
	var err error
	if p.s != nil {
		p.schemas, p.db = p.s.SearchPath(), p.s.Database()
	} else if p.schemas, err = currentSchemas(exec); err != nil {
		return err
	}
	if p.db == nil {
		if p.db, err = p.g.UseDatabase(database); err != nil {
			return err
		}
		p.ownDB = true
	}
	return nil
}

// currentSchemas reads the session's effective search path.
func currentSchemas(exec func(string) ([][]string, error)) ([]string, error) {
	rows, err := exec("SELECT pg_catalog.array_to_string(pg_catalog.current_schemas(false), ',')")
	if err != nil || len(rows) != 1 || len(rows[0]) != 1 {
		return nil, fmt.Errorf("pgveil: cannot read the session's search path: %v", err)
	}
	return strings.Split(rows[0][0], ","), nil
}

// Screen refuses ANONYMIZE from a role that may not run it. Sessions of
// roles that may are never screened: Open gives them a policy.
func (g guard) Screen(user string, sql []byte) error {
	// text borrows the message buffer: valid during this call only;
	// Is and Rejected (which logs it) keep nothing of it.
	if text := unsafe.String(unsafe.SliceData(sql), len(sql)); anonymize.Is(text) {
		err := notAllowed(user)
		g.g.Rejected(user, text, err)
		return err
	}
	return nil
}

func notAllowed(user string) error {
	return &masking.Rejection{Kind: masking.ReasonPrivilege, Construct: "ANONYMIZE",
		Message: fmt.Sprintf("pgveil: role %s may not run ANONYMIZE (only the roles in roles.anonymize may)", user)}
}

// policy is the proxy.Policy of a session that is masked (s is set), may
// run ANONYMIZE (mayAnonymize), or both.
type policy struct {
	g            *masking.Guard
	s            *masking.Session
	user         string
	mayAnonymize bool
	schemas      []string
	db           *masking.Database // the session's database, for ANONYMIZE
	ownDB        bool              // db was taken for this policy, not through s
	auditErr     error             // the audit log could not be made at Open
}

func (p policy) Analyze(sql string) (proxy.Query, error) {
	if anonymize.Is(sql) {
		return p.anonymize(sql, func(check string) error {
			_, err := p.s.Analyze(check)
			return err
		})
	}
	if p.s == nil {
		return untouched{}, nil
	}
	a, err := p.s.Analyze(sql)
	if err != nil {
		return nil, err
	}
	return analysis{a}, nil
}

func (p policy) Cached(sql string) (proxy.Query, error, bool) {
	if anonymize.Is(sql) {
		cached := true
		q, err := p.anonymize(sql, func(check string) error {
			_, err, ok := p.s.Cached(check)
			cached = ok
			return err
		})
		if !cached {
			return nil, nil, false
		}
		return q, err, true
	}
	if p.s == nil {
		return untouched{}, nil, true
	}
	a, err, ok := p.s.Cached(sql)
	if err != nil || a == nil {
		return nil, err, ok
	}
	return analysis{a}, nil, ok
}

func (p policy) Warm(sql string) {
	if p.s == nil {
		return
	}
	if anonymize.Is(sql) {
		if check, err := whereCheck(sql); err == nil {
			p.s.Warm(check)
		}
		return
	}
	p.s.Warm(sql)
}

// anonymize plans an ANONYMIZE statement. For a masked role, its WHERE
// first passes the predicate rules of any query of that role (checked by
// analysing "SELECT 1 FROM table WHERE ..."), so that the command is never
// an oracle.
func (p policy) anonymize(sql string, check func(string) error) (proxy.Query, error) {
	plan, err := p.planAnonymize(sql, check)
	if err != nil {
		return nil, err
	}
	rw := &proxy.Rewrite{SQL: plan.SQL, Params: plan.Params, ClientParams: plan.ClientParams}
	if !plan.Explain {
		rw.Tag = "ANONYMIZE"
		rw.Notice = vacuumNotice(plan.Tables)
		if m := p.g.Metrics(); m != nil {
			rows := m.AnonymizedRows.WithLabelValues(plan.Table)
			rw.Done = func(n int64) { rows.Add(float64(n)) }
		}
	}
	return rewritten{rw}, nil
}

// planAnonymize checks and plans an ANONYMIZE statement (see anonymize).
func (p policy) planAnonymize(sql string, check func(string) error) (*anonymize.Plan, error) {
	if !p.mayAnonymize {
		err := notAllowed(p.user)
		p.g.Rejected(p.user, sql, err)
		return nil, err
	}
	st, err := anonymize.Parse(sql)
	if err != nil {
		return nil, err
	}
	if p.s != nil {
		text, err := whereCheck(sql)
		if err != nil {
			return nil, err
		}
		if err := check(text); err != nil {
			var rej *masking.Rejection
			if errors.As(err, &rej) {
				return nil, err
			}
			return nil, fmt.Errorf("pgveil: the WHERE clause of ANONYMIZE cannot be checked: %w", err)
		}
	}
	return p.planChecked(st)
}

// planChecked plans an ANONYMIZE under the rules of the session's
// database, and refuses it where its audit log is missing or where check
// found errors in the rules of a table it would change.
func (p policy) planChecked(st *anonymize.Statement) (*anonymize.Plan, error) {
	cfg := p.g.Config()
	if p.db == nil {
		return nil, errors.New("pgveil: ANONYMIZE needs the session's database")
	}
	if p.auditErr != nil {
		if err := p.db.AuditLog(cfg.Roles.Anonymize); err != nil {
			return nil, err
		}
	}
	schemas := p.schemas
	if p.s != nil {
		schemas = p.s.SearchPath() // as the session follows it
	}
	plan, err := st.Plan(cfg.ForDatabase(p.db.Name()), schemas, 0)
	if err != nil {
		return nil, err
	}
	if err := p.db.Refusal(plan.Table); err != nil {
		return nil, err
	}
	return plan, nil
}

// whereCheck turns "[EXPLAIN] ANONYMIZE t WHERE ..." into "SELECT 1 FROM t
// WHERE ...". A text it cannot split fails the analysis, never passes it.
func whereCheck(sql string) (string, error) {
	i := strings.Index(strings.ToLower(sql), "anonymize")
	if i < 0 {
		return "", errors.New("pgveil: not an ANONYMIZE statement")
	}
	return "SELECT 1 FROM " + sql[i+len("anonymize"):], nil
}

// vacuumNotice names the tables whose old row versions still hold the
// overwritten and deleted values until VACUUM, which cannot run in a
// transaction, and says what to run once the transaction is committed.
func vacuumNotice(tables []string) string {
	idents := make([]string, len(tables))
	for i, t := range tables {
		schema, name, _ := strings.Cut(t, ".")
		idents[i] = pgx.Identifier{schema, name}.Sanitize()
	}
	return "pgveil: the old values remain in dead row versions of " + strings.Join(tables, ", ") +
		" until VACUUM, and in pg_statistic until ANALYZE; after COMMIT run VACUUM (ANALYZE) " + strings.Join(idents, ", ") +
		" (or pgveil anonymize, which does). Even then their bytes stay in the files' free space until overwritten: " +
		"rewrite the tables with pg_repack or VACUUM (FULL, ANALYZE) (an exclusive lock) to remove them"
}

func (p policy) Result(q proxy.Query, stmt int, fields []pgproto3.FieldDescription, formats []int16) (proxy.Masker, error) {
	a, ok := q.(analysis)
	if !ok {
		return nil, nil
	}
	rm, err := p.s.Result(a.a, stmt, fields, formats)
	if err != nil || rm == nil {
		return nil, err
	}
	return rowMasker{rm}, nil
}

func (p policy) CopyResult(q proxy.Query, stmt int) (proxy.Masker, error) {
	a, ok := q.(analysis)
	if !ok {
		return nil, nil
	}
	cm, err := p.s.CopyResult(a.a, stmt)
	if err != nil || cm == nil {
		return nil, err
	}
	return copyMasker{cm}, nil
}

func (p policy) Completed(q proxy.Query, stmt int) proxy.Names {
	a, ok := q.(analysis)
	if !ok {
		return proxy.Names{}
	}
	return proxy.Names(p.s.Completed(a.a, stmt))
}

func (p policy) Forget(n proxy.Names) {
	if p.s != nil {
		p.s.Forget(masking.Names(n))
	}
}

func (p policy) ScrubErrors(q proxy.Query, stmt int) bool {
	switch a := q.(type) {
	case analysis:
		return p.s.ScrubErrors(a.a, stmt)
	case rewritten:
		return p.s != nil // an ANONYMIZE's WHERE reads the table's PII
	case nil:
		return p.s != nil // a statement nobody analysed may read anything
	}
	return false
}

func (p policy) Ready(status byte, failed bool) {
	if p.s != nil {
		p.s.Ready(status, failed)
	}
}

func (p policy) Barrier(q proxy.Query) bool {
	a, ok := q.(analysis)
	return ok && p.s.Barrier(a.a)
}

func (p policy) Bindable(q proxy.Query) error {
	if a, ok := q.(analysis); ok {
		return p.s.Bindable(a.a)
	}
	return nil
}

func (p policy) Close() {
	if p.s != nil {
		p.s.Close()
	}
	if p.ownDB {
		p.db.Release()
	}
}

// analysis adapts masking.Analysis to proxy.Query.
type analysis struct{ a *masking.Analysis }

func (q analysis) Statements() int         { return q.a.Statements() }
func (q analysis) Rewrite() *proxy.Rewrite { return nil }
func (q analysis) Text() string            { return q.a.Text() }

// rewritten is an ANONYMIZE, run as its plan.
type rewritten struct{ rw *proxy.Rewrite }

func (q rewritten) Statements() int         { return 1 }
func (q rewritten) Rewrite() *proxy.Rewrite { return q.rw }
func (rewritten) Text() string              { return "" }

// untouched is any statement of an unmasked session: not parsed, passed on.
type untouched struct{}

func (untouched) Statements() int         { return 1 << 30 }
func (untouched) Rewrite() *proxy.Rewrite { return nil }
func (untouched) Text() string            { return "" }

type rowMasker struct{ r *masking.RowMasker }

func (m rowMasker) DataRow(dst, body []byte) ([]byte, error) { return m.r.MaskDataRow(dst, body) }
func (m rowMasker) CopyLine(dst, line []byte) ([]byte, error) {
	return dst, errNotCopy
}

func (m rowMasker) Flush() { m.r.Flush() }

type copyMasker struct{ c *masking.CopyMasker }

func (m copyMasker) Flush() { m.c.Flush() }

func (m copyMasker) DataRow(dst, body []byte) ([]byte, error) { return dst, errNotRows }
func (m copyMasker) CopyLine(dst, line []byte) ([]byte, error) {
	return m.c.CopyLine(dst, line)
}

var (
	errNotCopy = maskerError("pgveil: COPY data in a row result")
	errNotRows = maskerError("pgveil: a DataRow in a COPY result")
)

type maskerError string

func (e maskerError) Error() string { return string(e) }
