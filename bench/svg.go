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
	labelWidth  = 110 // room for "pgveil-masked" left of the bars
	valueRoom   = 60  // room right of the longest bar for its value
	barHeight   = 16
	rowHeight   = 22
	modeGap     = 22 // room for the mode's heading before its first row
	headerRoom  = 70 // title and panel titles
	footerRoom  = 92 // axis ticks, axis titles, legend and caption
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

// metric is one panel of the chart: a value per row and how to print it.
type metric struct {
	title, axis string
	value       func(row) float64
	format      string
}

// chartMetrics are the two panels: throughput and tail latency.
var chartMetrics = [2]metric{
	{"Throughput", "transactions per second (higher is better)", func(r row) float64 { return r.TPS }, "%.0f"},
	{"p99 latency", "milliseconds (lower is better)", func(r row) float64 { return r.P99Ms }, "%.2f"},
}

// writeSVG writes the report's rows as a bar chart to path.
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

// svg renders the chart: TPS and p99 latency side by side, one bar per
// (mode, target) row, with a legend and a caption naming the machine.
func (rep report) svg(w io.Writer) error {
	// Connections per second are on another scale than TPS: the chart
	// shows the query modes, the table all.
	rep.Rows = slices.DeleteFunc(slices.Clone(rep.Rows), func(r row) bool { return r.Mode == connectMode })
	bodyHeight := rep.bodyHeight()
	height := headerRoom + bodyHeight + footerRoom
	root := el("svg", "xmlns", "http://www.w3.org/2000/svg", "width", strconv.Itoa(chartWidth),
		"height", num(height), "viewBox", "0 0 "+strconv.Itoa(chartWidth)+" "+num(height),
		"font-family", fontFamily)
	root.Children = append(root.Children,
		el("rect", "width", "100%", "height", "100%", "fill", "#ffffff"),
		text(chartWidth/2, 26, "middle", 18, textColor, rep.title()))
	for i, m := range chartMetrics {
		x0 := float64(marginLeft + i*(panelWidth+panelGap))
		root.Children = append(root.Children, rep.panel(m, x0, bodyHeight)...)
	}
	root.Children = append(root.Children, rep.legend(headerRoom+bodyHeight+58)...)
	root.Children = append(root.Children, text(chartWidth/2, headerRoom+bodyHeight+82, "middle", 12, mutedColor, rep.caption()))
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

// title is the chart's heading: the workload.
func (rep report) title() string {
	s := rep.Settings
	return fmt.Sprintf("pgbench -S (select-only), scale %d, %d clients, %d threads, by query mode (-M)", s.Scale, s.Clients, s.Threads)
}

// caption names the machine, the date and how the figures were taken.
func (rep report) caption() string {
	m, s := rep.Machine, rep.Settings
	c := fmt.Sprintf("%s, %d cores, PostgreSQL %s", m.CPUModel, m.CPUs, m.PostgreSQL)
	if rep.Date != "" {
		c += ", " + rep.Date
	}
	return c + fmt.Sprintf("; median of %d rounds of %d s", s.Rounds, s.Seconds)
}

// bodyHeight is the height of the bars area: every row, and a gap before
// each mode.
func (rep report) bodyHeight() float64 {
	modes := 0
	for i, r := range rep.Rows {
		if i == 0 || rep.Rows[i-1].Mode != r.Mode {
			modes++
		}
	}
	return float64(len(rep.Rows)*rowHeight + modes*modeGap)
}

// panel draws one metric's bars, labels, values, grid and axis titles with
// its left edge at x0.
func (rep report) panel(m metric, x0, bodyHeight float64) []node {
	top := float64(headerRoom)
	barX := x0 + labelWidth
	barMax := panelWidth - labelWidth - valueRoom
	maxV := 0.0
	for _, r := range rep.Rows {
		maxV = math.Max(maxV, m.value(r))
	}
	step, limit := niceScale(maxV)
	scale := float64(barMax) / limit
	out := []node{text(barX+float64(barMax)/2, top-20, "middle", 15, textColor, m.title)}
	for k := 0.0; k*step <= limit+step/2; k++ {
		v := k * step
		x := barX + v*scale
		out = append(out,
			el("line", "x1", num(x), "y1", num(top), "x2", num(x), "y2", num(top+bodyHeight), "stroke", gridColor),
			text(x, top+bodyHeight+14, "middle", 11, mutedColor, strconv.FormatFloat(v, 'g', 6, 64)))
	}
	out = append(out, el("line", "x1", num(barX), "y1", num(top), "x2", num(barX), "y2", num(top+bodyHeight), "stroke", textColor))
	y := top
	for i, r := range rep.Rows {
		if i == 0 || rep.Rows[i-1].Mode != r.Mode {
			heading := text(x0, y+modeGap-6, "start", 12, mutedColor, r.Mode)
			heading.Attrs = append(heading.Attrs, xml.Attr{Name: xml.Name{Local: "font-weight"}, Value: "bold"})
			out = append(out, heading)
			y += modeGap
		}
		v := m.value(r)
		w := v * scale
		mid := y + rowHeight/2
		out = append(out,
			text(barX-6, mid+4, "end", 12, textColor, r.Target),
			el("rect", "x", num(barX), "y", num(mid-barHeight/2), "width", num(w), "height", strconv.Itoa(barHeight), "fill", colourOf(r.Target)),
			text(barX+w+4, mid+4, "start", 12, textColor, fmt.Sprintf(m.format, v)))
		y += rowHeight
	}
	out = append(out, text(barX+float64(barMax)/2, top+bodyHeight+32, "middle", 12, textColor, m.axis))
	return out
}

// legend draws one coloured square and name per target, centred at y.
func (rep report) legend(y float64) []node {
	var names []string
	for _, r := range rep.Rows {
		if !slices.Contains(names, r.Target) {
			names = append(names, r.Target)
		}
	}
	const itemWidth = 140
	x := chartWidth/2 - float64(len(names)*itemWidth)/2
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
