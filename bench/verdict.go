package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// The performance targets a run is judged against (issue 13): pgveil's
// figures beside PgBouncer's and direct PostgreSQL's in the same run.
const (
	minTPSUnmasked   = 1.00 // pgveil's TPS over PgBouncer's, select-only, both protocols
	maxCPUUnmasked   = 1.00 // pgveil's relay CPU per transaction over PgBouncer's
	minTPSMasked     = 0.90 // pgveil-masked's TPS over PgBouncer's
	maxBulkVsDirect  = 1.05 // a bulk read's seconds over direct's, masked or not
	maxIdleKiBPerSes = 64.0 // proxy memory per idle session
)

// verdict is one target and what the run measured for it.
type verdict struct {
	Target   string  `json:"target"`
	Measured float64 `json:"measured"`
	Bound    float64 `json:"bound"`
	AtLeast  bool    `json:"at_least"` // the bound is a minimum, else a maximum
	Met      bool    `json:"met"`
	unit     string
}

func newVerdict(target, unit string, measured, bound float64, atLeast bool) verdict {
	met := measured <= bound
	if atLeast {
		met = measured >= bound
	}
	return verdict{Target: target, Measured: measured, Bound: bound, AtLeast: atLeast, Met: met, unit: unit}
}

// verdicts judges the sections that ran against the targets.
func (rep report) verdicts() []verdict {
	var out []verdict
	for _, r := range rep.Rows {
		if r.Mode != "simple" && r.Mode != "extended" || r.TPSVsPgbouncer == nil {
			continue
		}
		switch r.Target {
		case "pgveil":
			out = append(out, newVerdict(r.Mode+" pgveil TPS vs pgbouncer", "x", *r.TPSVsPgbouncer, minTPSUnmasked, true))
			if r.CPUVsPgbouncer != nil {
				out = append(out, newVerdict(r.Mode+" pgveil CPU per txn vs pgbouncer", "x", *r.CPUVsPgbouncer, maxCPUUnmasked, false))
			}
		case "pgveil-masked":
			out = append(out, newVerdict(r.Mode+" pgveil-masked TPS vs pgbouncer", "x", *r.TPSVsPgbouncer, minTPSMasked, true))
		}
	}
	for _, b := range rep.Bulk {
		if strings.HasPrefix(b.Target, "pgveil") && b.VsDirect != nil {
			out = append(out, newVerdict("bulk "+b.Target+" seconds vs direct", "x", *b.VsDirect, maxBulkVsDirect, false))
		}
	}
	for _, i := range rep.Idle {
		if strings.HasPrefix(i.Target, "pgveil") {
			out = append(out, newVerdict("idle "+i.Target+" memory per session", " KiB", i.KiBPerSession, maxIdleKiBPerSes, false))
		}
	}
	return out
}

// printVerdicts writes each target, its bound and whether this run met it.
func printVerdicts(w io.Writer, vs []verdict) {
	if len(vs) == 0 {
		return
	}
	fmt.Fprintf(w, "\ntargets (this run, this machine)\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range vs {
		cmp, word := "<=", "missed"
		if v.AtLeast {
			cmp = ">="
		}
		if v.Met {
			word = "met"
		}
		fmt.Fprintf(tw, "%s\t%.2f%s\t%s %.2f%s\t%s\n", v.Target, v.Measured, v.unit, cmp, v.Bound, v.unit, word)
	}
	_ = tw.Flush()
}
