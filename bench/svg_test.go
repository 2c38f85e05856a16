package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

// fixedReport is a report as a run with PgBouncer and a masked role makes.
func fixedReport() report {
	rep := report{
		Machine:  machine{CPUs: 2, CPUModel: "AMD EPYC <test> & co", PostgreSQL: "15.18"},
		Date:     "2025-01-02",
		Settings: settings{Clients: 8, Threads: 2, Seconds: 5, Rounds: 3, Scale: 10, Modes: []string{"simple", "extended"}},
	}
	tps := map[string]float64{"direct": 12870, "pgbouncer": 13265, "pgveil": 9192, "pgveil-masked": 8198}
	p99 := map[string]float64{"direct": 3.316, "pgbouncer": 3.664, "pgveil": 4.038, "pgveil-masked": 4.544}
	for _, mode := range rep.Settings.Modes {
		for _, t := range []string{"direct", "pgbouncer", "pgveil", "pgveil-masked"} {
			rep.Rows = append(rep.Rows, row{Mode: mode, Target: t, TPS: tps[t], P99Ms: p99[t]})
		}
	}
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
		"simple", "extended", "by query mode (-M)", "direct", "pgbouncer", "pgveil", "pgveil-masked", "12870", "13265", "9192", "8198", "3.32", "3.66", "4.04", "4.54",
		"Throughput", "p99 latency", "transactions per second (higher is better)", "milliseconds (lower is better)",
		"AMD EPYC <test> & co, 2 cores, PostgreSQL 15.18, 2025-01-02",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("chart has no text %q; texts:\n%s", want, all)
		}
	}
	// 8 rows in 2 panels, 4 legend squares, the background.
	if rects != 8*2+4+1 {
		t.Errorf("chart has %d rects, want %d", rects, 8*2+4+1)
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
