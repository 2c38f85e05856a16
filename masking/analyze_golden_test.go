package masking

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files (and walk_gen.go)")

// A golden file (testdata/analyze/*.json) is an array of cases. The plan of
// a case is, compactly:
//
//	{"statements": [{"tag": "SELECT", "outputs": [...], "reads_pii": true, ...}]}
//	{"reject": "<message>", "hint": "<hint>"}
//	{"error": "<parse error>"}
//
// An output reads "id" when exact, "email = public.customers.email [email]"
// when it is the PII column itself (masked with its strategy), and
// "lower ~ public.customers.email" when it derives from PII columns (fully
// redacted). Origins are left out; TestOrigins covers them.
type goldenCase struct {
	Comment string          `json:"comment"`
	Query   string          `json:"query"`
	Plan    json.RawMessage `json:"plan"`
}

type goldenResult struct {
	Statements *[]goldenStatement `json:"statements,omitempty"`
	Reject     string             `json:"reject,omitempty"`
	Hint       string             `json:"hint,omitempty"`
	Error      string             `json:"error,omitempty"`
	// Runs is the text the server runs instead of the query (rewrite.go).
	Runs string `json:"runs,omitempty"`
}

type goldenStatement struct {
	Tag            string      `json:"tag"`
	Outputs        []string    `json:"outputs,omitempty"`
	AllColumns     string      `json:"all_columns,omitempty"`
	ReadsPII       bool        `json:"reads_pii,omitempty"`
	Cursor         string      `json:"cursor,omitempty"`
	Prepared       string      `json:"prepared,omitempty"`
	Copy           *goldenCopy `json:"copy,omitempty"`
	ChangesCatalog bool        `json:"changes_catalog,omitempty"`
	SearchPath     string      `json:"search_path,omitempty"` // set, local, reset, reset_local
}

type goldenCopy struct {
	CSV       bool   `json:"csv,omitempty"`
	Delimiter string `json:"delimiter"`
	Quote     string `json:"quote,omitempty"`
	Escape    string `json:"escape,omitempty"`
	Null      string `json:"null"`
	Header    bool   `json:"header,omitempty"`
	Binary    bool   `json:"binary,omitempty"`
}

// goldenOptions are the options every golden case runs with.
var goldenOptions = Options{Role: "support"}

func renderOutput(o Output) string {
	switch {
	case !o.Masked():
		return o.Name
	case o.Plain:
		return fmt.Sprintf("%s = %s [%s]", o.Name, strings.Join(o.Sources, ", "), o.Strategy)
	}
	return fmt.Sprintf("%s ~ %s", o.Name, strings.Join(o.Sources, ", "))
}

func renderCopy(c *CopyFormat) *goldenCopy {
	if c == nil {
		return nil
	}
	str := func(b byte) string {
		if b == 0 {
			return ""
		}
		return string(rune(b))
	}
	return &goldenCopy{CSV: c.CSV, Delimiter: str(c.Delimiter), Quote: str(c.Quote),
		Escape: str(c.Escape), Null: c.Null, Header: c.Header, Binary: c.Binary}
}

func renderResult(p *Plan, err error) goldenResult {
	var rej *Rejection
	switch {
	case errors.As(err, &rej):
		return goldenResult{Reject: rej.Error(), Hint: rej.Hint}
	case err != nil:
		return goldenResult{Error: err.Error()}
	}
	stmts := []goldenStatement{}
	for _, sp := range p.Statements {
		gs := goldenStatement{Tag: sp.Tag, ReadsPII: sp.ReadsPII, Cursor: sp.Cursor,
			Prepared: sp.Prepared, Copy: renderCopy(sp.Copy), ChangesCatalog: sp.ChangesCatalog,
			SearchPath: [...]string{"", "set", "local", "reset", "reset_local"}[sp.path]}
		for _, o := range sp.Outputs {
			gs.Outputs = append(gs.Outputs, renderOutput(o))
		}
		if sp.AllColumns != nil {
			gs.AllColumns = renderOutput(*sp.AllColumns)
		}
		stmts = append(stmts, gs)
	}
	return goldenResult{Statements: &stmts}
}

// renderCase analyses a query and renders its plan and rewritten text.
func renderCase(query string, cat Catalog) goldenResult {
	p, err := Analyze(query, cat, goldenOptions)
	r := renderResult(p, err)
	if err == nil && len(p.rewrites) > 0 {
		if r.Runs, err = rewriteText(query, p.rewrites); err != nil {
			r.Runs = "error: " + err.Error()
		}
	}
	return r
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// canonical re-encodes JSON so that layout does not matter.
func canonical(raw json.RawMessage) string {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	return string(mustJSON(v))
}

func readGolden(t *testing.T, path string) []goldenCase {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return cases
}

func writeGolden(t *testing.T, path string, cases []goldenCase) {
	var b bytes.Buffer
	b.WriteString("[\n")
	for i, c := range cases {
		fmt.Fprintf(&b, "  {\n    \"comment\": %s,\n    \"query\": %s,\n    \"plan\": ", mustJSON(c.Comment), mustJSON(c.Query))
		var plan bytes.Buffer
		_ = json.Indent(&plan, c.Plan, "    ", "  ")
		b.Write(plan.Bytes())
		b.WriteString("\n  }")
		if i < len(cases)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runGoldenFile checks (or with -update rewrites) the cases of one file.
func runGoldenFile(t *testing.T, path string) {
	cat := newTestCatalog()
	cases := readGolden(t, path)
	failed := false
	for i := range cases {
		c := &cases[i]
		got := mustJSON(renderCase(c.Query, cat))
		if canonical(got) == canonical(c.Plan) {
			continue
		}
		if *update {
			c.Plan = got
			continue
		}
		failed = true
		t.Errorf("%s case %d (%s)\nquery: %s\nwant:  %s\ngot:   %s", filepath.Base(path), i, c.Comment, c.Query, canonical(c.Plan), got)
	}
	if *update {
		writeGolden(t, path, cases)
	}
	if failed {
		t.Logf("if the new plans are right, regenerate with: go test ./masking -run TestGolden -update")
	}
}

// TestGolden runs every golden file but onecase.json.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/analyze/*.json")
	if len(files) < 2 {
		t.Fatal("no golden files")
	}
	for _, path := range files {
		if filepath.Base(path) == "onecase.json" {
			continue
		}
		t.Run(strings.TrimSuffix(filepath.Base(path), ".json"), func(t *testing.T) { runGoldenFile(t, path) })
	}
}

// TestOneCase runs testdata/analyze/onecase.json, a scratch file for
// debugging one query: put the case there and run
//
//	go test ./masking -run TestOneCase -v
func TestOneCase(t *testing.T) {
	const path = "testdata/analyze/onecase.json"
	cases := readGolden(t, path)
	if len(cases) == 0 || cases[0].Query == "" {
		t.Skip("onecase.json is empty")
	}
	for _, c := range cases {
		p, err := Analyze(c.Query, newTestCatalog(), goldenOptions)
		t.Logf("query: %s\nresult: %s", c.Query, mustJSON(renderResult(p, err)))
	}
	runGoldenFile(t, path)
}
