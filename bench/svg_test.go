package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

// fixedReport is a report as a full run with PgBouncer and a masked role
// makes: the query modes (pgveil-masked refused in rw mode), connect
// mode, the bulk read and the idle sessions.
func fixedReport() report {
	rep := report{
		Machine: machine{CPUs: 2, CPUModel: "AMD EPYC <test> & co", PostgreSQL: "15.18"},
		Date:    "2025-01-02",
		Settings: settings{Clients: 8, Threads: 2, Seconds: 5, Rounds: 3, Scale: 10, ManyClients: 200, BulkRows: 1000000,
			IdleSessions: 1000, Login: "pgveil_bench_login", Modes: []string{"simple", "extended", rwMode, connectMode, bulkSection, idleSection}},
	}
	tps := map[string]float64{"direct": 12870, "pgbouncer": 13265, "pgveil": 9192, "pgveil-masked": 8198}
	p99 := map[string]float64{"direct": 3.316, "pgbouncer": 3.664, "pgveil": 4.038, "pgveil-masked": 4.544}
	for _, mode := range []string{"simple", "extended", rwMode} {
		for _, t := range []string{"direct", "pgbouncer", "pgveil", "pgveil-masked"} {
			r := row{Mode: mode, Target: t, TPS: tps[t], P99Ms: p99[t]}
			if mode == rwMode && t == "pgveil-masked" {
				r = row{Mode: mode, Target: t, Refused: "in command 5: pgveil: column pgbench_accounts.abalance is PII"}
			}
			rep.Rows = append(rep.Rows, r)
		}
	}
	rep.Rows = append(rep.Rows, row{Mode: connectMode, Target: "pgbouncer-pgveil", TPS: 237, P99Ms: 107.4})
	rep.Bulk = []bulkRow{{Target: "direct", Seconds: 1.75, MBps: 123}, {Target: "pgveil-masked", Seconds: 1.8, MBps: 119}}
	rep.Idle = []idleRow{{Target: "pgveil", KiBPerSession: 27.8, AfterKiB: 48 * 1024}}
	return rep
}

func TestSVGChart(t *testing.T) {
	var buf bytes.Buffer
	if err := fixedReport().svg(&buf); err != nil {
		t.Fatal(err)
	}
	texts, rects := svgTexts(t, buf.Bytes())
	all := strings.Join(texts, "\n")
	for _, want := range []string{
		"simple", "extended", "rw", "direct", "pgbouncer", "pgveil", "pgveil-masked", "12870", "13265", "9192", "8198", "3.32", "3.66", "4.04", "4.54",
		"refused by pgveil's policy", "Throughput", "p99 latency", "transactions per second (higher is better)", "milliseconds (lower is better)",
		"pgbench -S (select-only), scale 10, 8 clients, 2 threads, by protocol (-M)", "pgbench's read-write script (TPC-B-like), -M extended, 8 clients",
		"pgbench -S -C: a new connection per transaction, as pgveil_bench_login", "pgbouncer-pgveil", "237", "107.4",
		"Bulk read of 1,000,000 rows by one client", "1.75", "1.80", "123", "119",
		"Relay memory with 1,000 idle sessions open (VmRSS)", "27.8", "48.0", "KiB per idle session (lower is better)",
		"AMD EPYC <test> & co, 2 cores, PostgreSQL 15.18, 2025-01-02; medians of 3 rounds (pgbench runs of 5 s)",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("chart has no text %q; texts:\n%s", want, all)
		}
	}
	// 11 measured query rows, 1 connect, 2 bulk and 1 idle row in 2
	// panels each, 5 legend squares, the background.
	if want := (11+1+2+1)*2 + 5 + 1; rects != want {
		t.Errorf("chart has %d rects, want %d", rects, want)
	}
}

func TestSVGLeavesOutEmptySections(t *testing.T) {
	rep := fixedReport()
	rep.Bulk, rep.Idle = nil, nil
	var buf bytes.Buffer
	if err := rep.svg(&buf); err != nil {
		t.Fatal(err)
	}
	texts, _ := svgTexts(t, buf.Bytes())
	for _, s := range texts {
		if strings.HasPrefix(s, "Bulk read") || strings.HasPrefix(s, "Relay memory") {
			t.Errorf("chart has a section without rows: %q", s)
		}
	}
}

// svgTexts checks that data is well-formed XML with an <svg> root, and
// returns the content of its <text> elements and the number of <rect>s.
func svgTexts(t *testing.T, data []byte) (texts []string, rects int) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var inText, sawRoot bool
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, data)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			sawRoot = sawRoot || tok.Name.Local == "svg" && tok.Name.Space == "http://www.w3.org/2000/svg"
			inText = tok.Name.Local == "text"
			if tok.Name.Local == "rect" {
				rects++
			}
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if !sawRoot {
		t.Error("no <svg> root in the SVG namespace")
	}
	return texts, rects
}

func TestNiceScale(t *testing.T) {
	for _, c := range []struct{ max, step, limit float64 }{
		{13265, 5000, 15000}, {4.544, 1, 5}, {0, 1, 1}, {100, 20, 100},
	} {
		if step, limit := niceScale(c.max); step != c.step || limit != c.limit {
			t.Errorf("niceScale(%v) = %v, %v; want %v, %v", c.max, step, limit, c.step, c.limit)
		}
	}
}
