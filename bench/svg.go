package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
)

// Chart geometry, in SVG user units (pixels at 100%).
const (
	chartWidth  = 960
	panelWidth  = 440 // each of the two panels
	panelGap    = 40
	marginLeft  = 20
	labelWidth  = 124 // room for "pgbouncer-pgveil" left of the bars
	valueRoom   = 60  // room right of the longest bar for its value
	barHeight   = 16
	rowHeight   = 22
	modeGap     = 22 // room for the mode's heading before its first row
	fontFamily  = "DejaVu Sans, Helvetica, Arial, sans-serif"
	gridColor   = "#dddddd"
	textColor   = "#222222"
	mutedColor  = "#555555"
	otherColour = "#888888"
)

// targetColours gives each known target its bar colour.
var targetColours = map[string]string{
	"direct":        "#7f7f7f",
	"pgbouncer":     "#1f77b4",
	"pgveil":        "#ff7f0e",
	"pgveil-masked": "#d62728",
	// the masked role through a pgveil whose rules mask a column the rw
	// script does not read
	"pgveil-filler":    "#e377c2",
	"pgveil-pgbouncer": "#2ca02c",
	"pgbouncer-pgveil": "#9467bd",
}

// node is one SVG element, marshalled by encoding/xml (which escapes text
// and attribute values).
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

// el makes an element from name and attribute name/value pairs.
func el(name string, attrs ...string) node {
	n := node{XMLName: xml.Name{Local: name}}
	for i := 0; i+1 < len(attrs); i += 2 {
		n.Attrs = append(n.Attrs, xml.Attr{Name: xml.Name{Local: attrs[i]}, Value: attrs[i+1]})
	}
	return n
}

// text makes a <text> element at x, y with the given anchor and size.
func text(x, y float64, anchor string, size int, fill, s string) node {
	n := el("text", "x", num(x), "y", num(y), "text-anchor", anchor, "font-size", strconv.Itoa(size), "fill", fill)
	n.Text = s
	return n
}

// num formats a coordinate with at most one decimal.
func num(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

// metric is one panel of a section: its title, the axis title and how to
// print a value.
type metric struct {
	title, axis string
	format      string
}

// chartSection is one band of the chart: two panels side by side over the
// same rows, each with its own scale.
type chartSection struct {
	title   string
	metrics [2]metric
	rows    []chartRow
}

// chartRow is one bar in each panel: its group (a heading above the
// first of its rows), target and values; a row with a note (pgveil
// refused the script) shows the note instead of bars.
type chartRow struct {
	group, target string
	values        [2]float64
	note          string
}

// Section geometry, in SVG user units.
const (
	titleRoom   = 44 // the chart's title
	sectionHead = 52 // a section's title and its panels' titles
	sectionFoot = 44 // axis ticks and axis titles
	sectionGap  = 18
	legendRoom  = 56 // legend and caption
)

// writeSVG writes the report as a chart to path.
func (rep report) writeSVG(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--svg: %w", err)
	}
	err = rep.svg(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("--svg: %w", err)
	}
	return nil
}

// svg renders the chart: one section per kind of figure (the query
// modes, the connection rate, the bulk read, the idle memory), each with
// two panels, then a legend and a caption naming the machine.
func (rep report) svg(w io.Writer) error {
	sections := rep.sections()
	height := float64(titleRoom + legendRoom)
	for _, sec := range sections {
		height += sec.height() + sectionGap
	}
	root := el("svg", "xmlns", "http://www.w3.org/2000/svg", "width", strconv.Itoa(chartWidth),
		"height", num(height), "viewBox", "0 0 "+strconv.Itoa(chartWidth)+" "+num(height),
		"font-family", fontFamily)
	root.Children = append(root.Children,
		el("rect", "width", "100%", "height", "100%", "fill", "#ffffff"),
		text(chartWidth/2, 26, "middle", 18, textColor, "make bench: direct PostgreSQL, PgBouncer and pgveil, one run"))
	y := float64(titleRoom)
	for _, sec := range sections {
		root.Children = append(root.Children, sec.draw(y)...)
		y += sec.height() + sectionGap
	}
	root.Children = append(root.Children, legend(sections, y+12)...)
	root.Children = append(root.Children, text(chartWidth/2, y+40, "middle", 12, mutedColor, rep.caption()))
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", " ")
	if err := enc.Encode(root); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// sections are the chart's sections for what the run measured.
func (rep report) sections() []chartSection {
	s := rep.Settings
	tpsP99 := [2]metric{{"Throughput", "transactions per second (higher is better)", "%.0f"}, {"p99 latency", "milliseconds (lower is better)", "%.2f"}}
	selectOnly := chartSection{title: fmt.Sprintf("pgbench -S (select-only), scale %d, %d clients, %d threads, by protocol (-M)", s.Scale, s.Clients, s.Threads), metrics: tpsP99}
	rw := chartSection{title: fmt.Sprintf("pgbench's read-write script (TPC-B-like), -M extended, %d clients", s.Clients), metrics: tpsP99}
	many := chartSection{title: fmt.Sprintf("pgbench -S -M simple, %d clients", s.ManyClients), metrics: tpsP99}
	connect := chartSection{title: "pgbench -S -C: a new connection per transaction, as " + s.Login,
		metrics: [2]metric{{"Connection rate", "connections per second (higher is better)", "%.0f"}, {"p99 latency", "milliseconds (lower is better)", "%.1f"}}}
	byMode := map[string]*chartSection{rwMode: &rw, manyMode: &many, connectMode: &connect}
	for _, r := range rep.Rows {
		cr := chartRow{group: r.Mode, target: r.Target, values: [2]float64{r.TPS, r.P99Ms}}
		if r.Refused != "" {
			cr.note = "refused by pgveil's policy"
		}
		sec, ok := byMode[r.Mode]
		if !ok {
			sec = &selectOnly
		}
		sec.rows = append(sec.rows, cr)
	}
	bulk := chartSection{title: fmt.Sprintf("Bulk read of %s rows by one client", rowsLabel(s.BulkRows)),
		metrics: [2]metric{{"Time", "seconds (lower is better)", "%.2f"}, {"Throughput", "MB of rows per second (higher is better)", "%.0f"}}}
	for _, r := range rep.Bulk {
		bulk.rows = append(bulk.rows, chartRow{group: bulkSection, target: r.Target, values: [2]float64{r.Seconds, r.MBps}})
	}
	idle := chartSection{title: fmt.Sprintf("Relay memory with %s idle sessions open (VmRSS)", rowsLabel(s.IdleSessions)),
		metrics: [2]metric{{"Per session", "KiB per idle session (lower is better)", "%.1f"}, {"Whole relay", "MiB resident (lower is better)", "%.1f"}}}
	for _, r := range rep.Idle {
		idle.rows = append(idle.rows, chartRow{group: idleSection, target: r.Target, values: [2]float64{r.KiBPerSession, float64(r.AfterKiB) / 1024}})
	}
	return slices.DeleteFunc([]chartSection{selectOnly, rw, many, connect, bulk, idle}, func(c chartSection) bool { return len(c.rows) == 0 })
}

// caption names the machine, the date and how the figures were taken.
func (rep report) caption() string {
	m, s := rep.Machine, rep.Settings
	c := fmt.Sprintf("%s, %d cores, PostgreSQL %s", m.CPUModel, m.CPUs, m.PostgreSQL)
	if rep.Date != "" {
		c += ", " + rep.Date
	}
	return c + fmt.Sprintf("; medians of %d rounds (pgbench runs of %d s)", s.Rounds, s.Seconds)
}

// bodyHeight is the height of a section's bars: every row, and a gap
// before each group.
func (sec chartSection) bodyHeight() float64 {
	groups := 0
	for i, r := range sec.rows {
		if i == 0 || sec.rows[i-1].group != r.group {
			groups++
		}
	}
	return float64(len(sec.rows)*rowHeight + groups*modeGap)
}

// height is the section's whole height.
func (sec chartSection) height() float64 {
	return sectionHead + sec.bodyHeight() + sectionFoot
}

// draw lays the section out with its top at y.
func (sec chartSection) draw(y float64) []node {
	title := text(marginLeft, y+18, "start", 15, textColor, sec.title)
	title.Attrs = append(title.Attrs, xml.Attr{Name: xml.Name{Local: "font-weight"}, Value: "bold"})
	out := []node{title}
	for i, m := range sec.metrics {
		x0 := float64(marginLeft + i*(panelWidth+panelGap))
		out = append(out, sec.panel(i, m, x0, y+sectionHead)...)
	}
	return out
}

// panel draws metric i's bars, labels, values, grid and axis titles with
// its left edge at x0 and its bars from top.
func (sec chartSection) panel(i int, m metric, x0, top float64) []node {
	bodyHeight := sec.bodyHeight()
	barX := x0 + labelWidth
	barMax := panelWidth - labelWidth - valueRoom
	maxV := 0.0
	for _, r := range sec.rows {
		maxV = math.Max(maxV, r.values[i])
	}
	step, limit := niceScale(maxV)
	scale := float64(barMax) / limit
	out := []node{text(barX+float64(barMax)/2, top-8, "middle", 13, textColor, m.title)}
	for k := 0.0; k*step <= limit+step/2; k++ {
		v := k * step
		x := barX + v*scale
		out = append(out,
			el("line", "x1", num(x), "y1", num(top), "x2", num(x), "y2", num(top+bodyHeight), "stroke", gridColor),
			text(x, top+bodyHeight+14, "middle", 11, mutedColor, strconv.FormatFloat(v, 'g', 6, 64)))
	}
	out = append(out, el("line", "x1", num(barX), "y1", num(top), "x2", num(barX), "y2", num(top+bodyHeight), "stroke", textColor))
	y := top
	for j, r := range sec.rows {
		if j == 0 || sec.rows[j-1].group != r.group {
			heading := text(x0, y+modeGap-6, "start", 12, mutedColor, r.group)
			heading.Attrs = append(heading.Attrs, xml.Attr{Name: xml.Name{Local: "font-weight"}, Value: "bold"})
			out = append(out, heading)
			y += modeGap
		}
		mid := y + rowHeight/2
		out = append(out, text(barX-6, mid+4, "end", 12, textColor, r.target))
		if r.note != "" {
			out = append(out, text(barX+4, mid+4, "start", 12, mutedColor, r.note))
		} else {
			w := r.values[i] * scale
			out = append(out,
				el("rect", "x", num(barX), "y", num(mid-barHeight/2), "width", num(w), "height", strconv.Itoa(barHeight), "fill", colourOf(r.target)),
				text(barX+w+4, mid+4, "start", 12, textColor, fmt.Sprintf(m.format, r.values[i])))
		}
		y += rowHeight
	}
	out = append(out, text(barX+float64(barMax)/2, top+bodyHeight+32, "middle", 12, textColor, m.axis))
	return out
}

// legend draws one coloured square and name per target of the
// sections, centred at y.
func legend(sections []chartSection, y float64) []node {
	var names []string
	for _, sec := range sections {
		for _, r := range sec.rows {
			if !slices.Contains(names, r.target) {
				names = append(names, r.target)
			}
		}
	}
	itemWidth := min(140, float64(chartWidth-2*marginLeft)/float64(max(len(names), 1)))
	x := chartWidth/2 - float64(len(names))*itemWidth/2
	var out []node
	for _, n := range names {
		out = append(out,
			el("rect", "x", num(x), "y", num(y-10), "width", "12", "height", "12", "fill", colourOf(n)),
			text(x+18, y, "start", 12, textColor, n))
		x += itemWidth
	}
	return out
}

// colourOf is the bar colour of a target.
func colourOf(target string) string {
	if c, ok := targetColours[target]; ok {
		return c
	}
	return otherColour
}

// niceScale picks a tick step of 1, 2 or 5 times a power of ten that
// divides [0, maxV] into at most 5 steps, and the axis limit (a multiple
// of the step at or above maxV).
func niceScale(maxV float64) (step, limit float64) {
	if maxV <= 0 || math.IsNaN(maxV) || math.IsInf(maxV, 0) {
		return 1, 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(maxV/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		step = m * pow
		if maxV/step <= 5 {
			break
		}
	}
	return step, math.Ceil(maxV/step) * step
}
