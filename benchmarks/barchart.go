package benchmarks

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Colours of the bar charts: ferry's rows, ferry's rows compared with
// another of its own (a setting), and the peers.
const (
	colorFerry   = "#1f77b4"
	colorVariant = "#9ecae1"
	colorPeer    = "#ff7f0e"
)

// chartRows returns the rows charted: every row at the report's first
// concurrency level, in report order (compared rows after their reference).
func chartRows(rep *Report) []Row {
	var rows []Row
	for _, r := range rep.Rows {
		if r.Concurrency == rep.Load.Concurrency[0] {
			rows = append(rows, r)
		}
	}
	return rows
}

func rowColor(r Row) string {
	switch {
	case r.Peer:
		return colorPeer
	case r.VS != "":
		return colorVariant
	}
	return colorFerry
}

// bar is one bar of a barChart row: a value, an optional min..max
// whisker, and its hover text.
type bar struct {
	v, lo, hi float64
	color     string
	title     string
}

// barRow is one labelled row of a barChart: bars, or "—" with the reason
// it has none (on hover) when na is set.
type barRow struct {
	label     string
	gapBefore bool // a new comparison group starts here
	bars      []bar
	text      string // after the bars
	na        string
}

// barChart is a horizontal bar chart on a logarithmic axis, so values
// three decades apart (per-request CGI and long-lived workers) are all
// readable.
type barChart struct {
	id, title, axis string
	legend          [][2]string // colour, name
	rows            []barRow
	unit            func(float64) string
}

// Geometry of a barChart, in pixels.
const (
	barWidth    = 1000 // the whole chart
	barLabel    = 330  // the label column, right-aligned
	barPlot     = 400  // the plot; the value texts follow it
	barThin     = 6    // one bar of several in a row
	barThick    = 14   // a row's only bar, and a row's least height
	barRowGap   = 6
	barGroupGap = 10
	barTop      = 44 // room for the legend
)

func (c barChart) svg() template.HTML {
	minV, maxV := math.Inf(1), 0.0
	for _, r := range c.rows {
		for _, b := range r.bars {
			if b.v > 0 {
				minV, maxV = min(minV, b.v), max(maxV, b.v, b.hi)
				if b.lo > 0 {
					minV = min(minV, b.lo)
				}
			}
		}
	}
	if maxV == 0 {
		minV, maxV = 1, 10
	}
	lo, hi := math.Floor(math.Log10(minV)), math.Ceil(math.Log10(maxV))
	if hi <= lo {
		hi = lo + 1
	}
	px := func(v float64) float64 {
		if v <= 0 {
			return barLabel
		}
		return barLabel + (math.Log10(v)-lo)/(hi-lo)*barPlot
	}
	rowH := func(r barRow) float64 {
		if len(r.bars) <= 1 {
			return barThick
		}
		return float64(len(r.bars) * barThin)
	}
	y := float64(barTop)
	ys := make([]float64, len(c.rows))
	for i, r := range c.rows {
		if r.gapBefore && i > 0 {
			y += barGroupGap
		}
		ys[i] = y
		y += rowH(r) + barRowGap
	}
	var b svgBuilder
	b.f(`<svg id="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%.0f" role="img"><title>%s</title>`, c.id, barWidth, y+44, esc(c.title))
	x := float64(barLabel)
	for _, l := range c.legend {
		b.f(`<rect x="%.0f" y="8" width="10" height="10" fill="%s"/><text x="%.0f" y="17" font-size="12">%s</text>`, x, l[0], x+14, esc(l[1]))
		x += 14 + 7*float64(len([]rune(l[1]))) + 16
	}
	for d := lo; d <= hi; d++ {
		gx := px(math.Pow(10, d))
		b.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%.0f" stroke="#ddd"/>`, gx, barTop-4, gx, y)
		b.f(`<text x="%.1f" y="%.0f" font-size="11" text-anchor="middle">%s</text>`, gx, y+14, esc(c.unit(math.Pow(10, d))))
	}
	b.f(`<text x="%d" y="%.0f" font-size="12" text-anchor="middle">%s</text>`, barLabel+barPlot/2, y+34, esc(c.axis))
	for i, r := range c.rows {
		ry, rh := ys[i], rowH(r)
		b.f(`<text class="label" x="%d" y="%.1f" font-size="12" text-anchor="end">%s</text>`, barLabel-6, ry+rh/2+4, esc(r.label))
		if r.na != "" {
			b.f(`<text class="na" x="%d" y="%.1f" font-size="12">—<title>%s</title></text>`, barLabel+4, ry+rh/2+4, esc(r.na))
			continue
		}
		end := float64(barLabel)
		bh := rh / float64(len(r.bars))
		for j, br := range r.bars {
			by := ry + float64(j)*bh
			w := max(px(br.v)-barLabel, 1)
			b.f(`<rect x="%d" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>`, barLabel, by, w, bh-1, br.color, esc(br.title))
			end = max(end, barLabel+w)
			if br.hi > br.lo && br.lo > 0 {
				b.f(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333" stroke-width="2"><title>runs: %s to %s</title></line>`,
					px(br.lo), by+bh/2, px(br.hi), by+bh/2, esc(c.unit(br.lo)), esc(c.unit(br.hi)))
				end = max(end, px(br.hi))
			}
		}
		b.f(`<text class="value" x="%.1f" y="%.1f" font-size="11">%s</text>`, end+4, ry+rh/2+4, esc(r.text))
	}
	b.f(`</svg>`)
	return template.HTML(b.String())
}

// reqsUnit labels a requests-per-second tick.
func reqsUnit(v float64) string {
	switch {
	case v >= 1e6:
		return shortNum(v/1e6) + "M"
	case v >= 1e3:
		return shortNum(v/1e3) + "k"
	}
	return shortNum(v)
}

// msUnit labels a latency tick in milliseconds.
func msUnit(v float64) string { return shortNum(v) + " ms" }

// naReason says why a row has no bars.
func naReason(r Row) string {
	if r.failed() {
		return "every request failed: " + cmpNote(&r)
	}
	return cmpNote(&r)
}

// throughputChart draws req/s per row at the first concurrency level as
// grouped horizontal bars on a log axis: each ferry row, then the rows
// compared with it with ferry's ratio (and the rows that add to one, such
// as the hops through ferry in front of an app served directly, with what
// they leave of its req/s), and the runs' min..max as a whisker.
func throughputChart(rep *Report) template.HTML {
	pairOf := make(map[string]Pair)
	for _, p := range rep.Pairs {
		on := p.Other // a peer's bar gives ferry's ratio over it
		if p.Over {
			on = p.Ferry // what a row adds to another: its bar gives what is left
		}
		pairOf[on+"@"+fmt.Sprint(p.Concurrency)] = p
	}
	c := barChart{id: chartThroughput, title: "Requests per second by scenario",
		axis:   "requests per second (log scale) — higher is better",
		legend: [][2]string{{colorFerry, "ferry"}, {colorVariant, "ferry, another setting"}, {colorPeer, "peer"}}, unit: reqsUnit}
	for _, r := range chartRows(rep) {
		br := barRow{label: r.Scenario, gapBefore: r.VS == "" && r.Over == ""}
		if !r.measured() {
			br.na = naReason(r)
			c.rows = append(c.rows, br)
			continue
		}
		title := fmt.Sprintf("%s: %.0f req/s (median of %d runs, spread %.0f%%)", r.Scenario, r.RPS.Median, r.Runs, r.RPS.Spread)
		br.bars = []bar{{v: r.RPS.Median, lo: r.RPS.Min, hi: r.RPS.Max, color: rowColor(r), title: title}}
		br.text = fmt.Sprintf("%.0f req/s", r.RPS.Median)
		if p, ok := pairOf[rowKey(r)]; ok && p.Ratio > 0 {
			if p.Over {
				br.text += fmt.Sprintf(" · %.2f× %s", p.Ratio, gatewayOf(p.Other))
			} else {
				br.text += fmt.Sprintf(" · ferry %.2f×", p.Ratio)
			}
			if p.WithinNoise && p.Note == "" {
				br.text += " (within noise)"
			}
		}
		c.rows = append(c.rows, br)
	}
	return c.svg()
}

// percentileColors colour p50, p90, p99 and p99.9.
var percentileColors = [4]string{"#2ca02c", "#bcbd22", "#ff7f0e", "#d62728"}

// latencyChart draws, per row at the first concurrency level, its p50,
// p90, p99 and p99.9 latency as four thin bars on a log axis, grouped as
// the throughput chart is.
func latencyChart(rep *Report) template.HTML {
	names := [4]string{"p50", "p90", "p99", "p99.9"}
	c := barChart{id: chartLatency, title: "Latency percentiles by scenario",
		axis: "latency in milliseconds (log scale) — lower is better", unit: msUnit}
	for i, n := range names {
		c.legend = append(c.legend, [2]string{percentileColors[i], n})
	}
	for _, r := range chartRows(rep) {
		br := barRow{label: r.Scenario, gapBefore: r.VS == "" && r.Over == ""}
		if !r.measured() {
			br.na = naReason(r)
			c.rows = append(c.rows, br)
			continue
		}
		for i, v := range []float64{r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.P999} {
			br.bars = append(br.bars, bar{v: v, color: percentileColors[i], title: fmt.Sprintf("%s %s: %s ms", r.Scenario, names[i], f2(v))})
		}
		br.text = fmt.Sprintf("p50 %s · p99 %s ms", f2(r.Latency.P50), f2(r.Latency.P99))
		c.rows = append(c.rows, br)
	}
	return c.svg()
}

// gatewayOf returns the gateway of scenario APP/LANG/MODE/GATEWAY (which
// may hold slashes of its own, as net/http does).
func gatewayOf(scenario string) string {
	parts := strings.SplitN(scenario, "/", 4)
	return parts[len(parts)-1]
}
