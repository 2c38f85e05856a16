package main

import (
	"fmt"
	"unsafe"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/anonymize"
	"github.com/pgveil/pgveil/masking"
	"github.com/pgveil/pgveil/proxy"
)

// guard adapts masking.Guard to the proxy's Guard interface. It is the
// only place where the two packages meet.
type guard struct{ g *masking.Guard }

func (g guard) Open(info proxy.SessionInfo, exec func(string) ([][]string, error)) (proxy.Policy, error) {
	s, err := g.g.Open(info.User, info.Database, info.Params, exec)
	if err != nil || s == nil {
		return nil, err
	}
	return policy{s}, nil
}

// Screen refuses ANONYMIZE from a role that may not run it. Sessions of
// roles that may are never screened: Open gives them a policy.
func (g guard) Screen(user string, sql []byte) error {
	if anonymize.Is(unsafe.String(unsafe.SliceData(sql), len(sql))) {
		return notAllowed(user)
	}
	return nil
}

func notAllowed(user string) error {
	return fmt.Errorf("pgveil: role %s may not run ANONYMIZE (only the roles in roles.anonymize may)", user)
}

// policy adapts masking.Session to proxy.Policy.
type policy struct{ s *masking.Session }

func (p policy) Analyze(sql string) (proxy.Query, error) {
	a, err := p.s.Analyze(sql)
	if err != nil {
		return nil, err
	}
	return analysis{a}, nil
}

func (p policy) Cached(sql string) (proxy.Query, error, bool) {
	a, err, ok := p.s.Cached(sql)
	if err != nil || a == nil {
		return nil, err, ok
	}
	return analysis{a}, nil, ok
}

func (p policy) Warm(sql string) { p.s.Warm(sql) }

// analysis adapts masking.Analysis to proxy.Query.
type analysis struct{ a *masking.Analysis }

func (q analysis) Statements() int { return q.a.Statements() }

func (q analysis) Rewrite() *proxy.Rewrite { return nil }

func (p policy) Result(q proxy.Query, stmt int, fields []pgproto3.FieldDescription, formats []int16) (proxy.Masker, error) {
	rm, err := p.s.Result(q.(analysis).a, stmt, fields, formats)
	if err != nil || rm == nil {
		return nil, err
	}
	return rowMasker{rm}, nil
}

func (p policy) CopyResult(q proxy.Query, stmt int) (proxy.Masker, error) {
	cm, err := p.s.CopyResult(q.(analysis).a, stmt)
	if err != nil || cm == nil {
		return nil, err
	}
	return copyMasker{cm}, nil
}

func (p policy) Completed(q proxy.Query, stmt int) { p.s.Completed(q.(analysis).a, stmt) }

func (p policy) ScrubErrors(q proxy.Query, stmt int) bool {
	return p.s.ScrubErrors(q.(analysis).a, stmt)
}

func (p policy) Close() {}

type rowMasker struct{ r *masking.RowMasker }

func (m rowMasker) DataRow(dst, body []byte) ([]byte, error) { return m.r.MaskDataRow(dst, body) }
func (m rowMasker) CopyLine(dst, line []byte) ([]byte, error) {
	return dst, errNotCopy
}

type copyMasker struct{ c *masking.CopyMasker }

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
