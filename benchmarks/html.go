package benchmarks

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

// Chart IDs of the HTML report: each is the id of an <svg> element.
const (
	chartThroughput  = "chart-throughput"
	chartLatency     = "chart-latency"
	chartConcurrency = "chart-concurrency"
	chartStartup     = "chart-startup"
)

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

func color(i int) string { return palette[i%len(palette)] }

// svgBuilder accumulates an SVG document.
type svgBuilder struct{ strings.Builder }

func (b *svgBuilder) f(format string, a ...any) { fmt.Fprintf(&b.Builder, format, a...) }

func esc(s string) string { return template.HTMLEscapeString(s) }

// plot is a line chart with labelled series.
type plot struct {
	id, title, xLabel, yLabel string
	logX, logY                bool
	series                    []series
	xTicks                    []float64
	xTickLabel                func(float64) string
}

type series struct {
	name string
	x, y []float64
}

func (p plot) svg() template.HTML {
	const w, h, left, right, top, bottom = 900, 420, 60, 260, 20, 40
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	tx := func(v float64) float64 {
		if p.logX {
			return math.Log10(max(v, 1e-9))
		}
		return v
	}
	ty := func(v float64) float64 {
		if p.logY {
			return math.Log10(max(v, 1e-3))
		}
		return v
	}
	for _, s := range p.series {
		for i := range s.x {
			minX, maxX = min(minX, tx(s.x[i])), max(maxX, tx(s.x[i]))
			minY, maxY = min(minY, ty(s.y[i])), max(maxY, ty(s.y[i]))
		}
	}
	if math.IsInf(minX, 0) {
		minX, maxX, minY, maxY = 0, 1, 0, 1
	}
	if !p.logY {
		minY = 0
	}
	if maxX == minX {
		maxX = minX + 1
	}
	if maxY == minY {
		maxY = minY + 1
	}
	px := func(v float64) float64 { return left + (tx(v)-minX)/(maxX-minX)*(w-left-right) }
	py := func(v float64) float64 { return h - bottom - (ty(v)-minY)/(maxY-minY)*(h-top-bottom) }
	var b svgBuilder
	b.f(`<svg id="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img"><title>%s</title>`, p.id, w, h, esc(p.title))
	b.f(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/><line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333"/>`,
		left, h-bottom, w-right, h-bottom, left, top, left, h-bottom)
	// Y ticks: 5 steps, labelled in data units.
	for i := 0; i <= 4; i++ {
		v := minY + (maxY-minY)*float64(i)/4
		label := v
		if p.logY {
			label = math.Pow(10, v)
		}
		y := h - bottom - float64(i)/4*(h-top-bottom)
		b.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" font-size="11" text-anchor="end">%s</text>`,
			left, y, w-right, y, left-4, y+4, esc(shortNum(label)))
	}
	for _, t := range p.xTicks {
		if tx(t) < minX || tx(t) > maxX {
			continue
		}
		l := shortNum(t)
		if p.xTickLabel != nil {
			l = p.xTickLabel(t)
		}
		// Below the lowest y tick's label, which ends at the axis corner.
		b.f(`<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, px(t), h-bottom+20, esc(l))
	}
	b.f(`<text x="%d" y="%d" font-size="12" text-anchor="middle">%s</text>`, (left+w-right)/2, h-3, esc(p.xLabel))
	b.f(`<text x="12" y="%d" font-size="12" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`, (top+h-bottom)/2, (top+h-bottom)/2, esc(p.yLabel))
	for i, s := range p.series {
		var pts []string
		for j := range s.x {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.x[j]), py(s.y[j])))
		}
		b.f(`<polyline class="series" fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`, color(i), strings.Join(pts, " "), esc(s.name))
		b.f(`<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" font-size="11">%s</text>`,
			w-right+10, top+i*15, color(i), w-right+24, top+i*15+9, esc(s.name))
	}
	b.f(`</svg>`)
	return template.HTML(b.String())
}

func shortNum(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2g", v)
}

// concurrencyChart draws throughput against concurrency, one line per
// scenario.
func concurrencyChart(rep *Report) template.HTML {
	p := plot{id: chartConcurrency, title: "Throughput against concurrency", xLabel: "concurrency (log scale)",
		yLabel: "requests per second — higher is better", logX: true,
		xTicks: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}, xTickLabel: func(v float64) string { return fmt.Sprintf("%g", v) }}
	idx := make(map[string]int)
	for _, r := range rep.Rows {
		if r.Runs == 0 {
			continue
		}
		i, ok := idx[r.Scenario]
		if !ok {
			i = len(p.series)
			idx[r.Scenario] = i
			p.series = append(p.series, series{name: r.Scenario})
		}
		p.series[i].x = append(p.series[i].x, float64(r.Concurrency))
		p.series[i].y = append(p.series[i].y, r.RPS.Median)
	}
	return p.svg()
}

// startupChart draws, per app and language, the worker latency and the
// startup cost stacked (together the per-request CGI latency), with the raw
// exec time as a tick.
func startupChart(rep *Report) template.HTML {
	const label, width, barH = 160, 900, 18
	maxV := 0.001
	for _, s := range rep.Startup {
		maxV = max(maxV, s.CGIMs, s.RawExecMs)
	}
	scale := float64(width-label-120) / maxV
	h := 40 + len(rep.Startup)*(barH+6)
	var b svgBuilder
	b.f(`<svg id="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img"><title>Startup cost of per-request CGI</title>`, chartStartup, width, h)
	b.f(`<rect x="%d" y="4" width="10" height="10" fill="#2ca02c"/><text x="%d" y="13" font-size="11">worker p50</text>`, label, label+14)
	b.f(`<rect x="%d" y="4" width="10" height="10" fill="#d62728"/><text x="%d" y="13" font-size="11">startup (CGI p50 − worker p50)</text>`, label+100, label+114)
	b.f(`<rect x="%d" y="4" width="3" height="10" fill="#000"/><text x="%d" y="13" font-size="11">raw exec, one at a time</text>`, label+320, label+328)
	for i, s := range rep.Startup {
		y := 24 + i*(barH+6)
		b.f(`<text x="%d" y="%d" font-size="12" text-anchor="end">%s/%s</text>`, label-6, y+13, esc(s.App), esc(s.Lang))
		worker := s.WorkerMs
		if s.WorkerRow == "" {
			worker = 0
		}
		b.f(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="#2ca02c"><title>worker %.2f ms</title></rect>`, label, y, worker*scale, barH, worker)
		b.f(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#d62728"><title>startup %.2f ms</title></rect>`,
			float64(label)+worker*scale, y, max(s.CGIMs-worker, 0)*scale, barH, s.CGIMs-worker)
		b.f(`<rect x="%.1f" y="%d" width="3" height="%d" fill="#000"><title>raw exec %.2f ms</title></rect>`, float64(label)+s.RawExecMs*scale, y-2, barH+4, s.RawExecMs)
		b.f(`<text x="%.1f" y="%d" font-size="11">%.2f ms</text>`, float64(label)+max(s.CGIMs, s.RawExecMs)*scale+6, y+13, s.CGIMs)
	}
	b.f(`</svg>`)
	return template.HTML(b.String())
}

var htmlPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>ferry bench report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}.peer{color:#567}.na{color:#999}.busy{color:#b00;font-weight:bold}.overview{font-size:15px;max-width:60em}
svg{display:block;margin:1em 0;font-family:system-ui,sans-serif}
</style></head><body>
<h1>ferry bench</h1>
<p class="overview">{{.R.Overview}}</p>
{{with .R.MachineLoad}}{{if .Busy}}<p class="busy">{{.Reason}}</p>{{end}}{{end}}
<p>{{.R.MachineLine}}</p>
<p>Reproduce: <code>{{.Cmd}}</code></p>
{{if .R.Pairs}}<h2>ferry against what it replaces</h2>
<p>Ratio: ferry's req/s over the other's (higher is better for ferry; for a row that adds to another, a hop or idle connections, what is left of the other's); the range comes from the runs' extremes.</p>
<table><tr><th>ferry row</th><th>compared with</th><th>conc</th><th>ratio</th><th>range</th><th>verdict</th></tr>
{{range .R.Pairs}}<tr><td>{{.Ferry}}</td><td>{{.Other}}</td><td>{{.Concurrency}}</td><td>{{if .Ratio}}{{printf "%.2f×" .Ratio}}{{else}}—{{end}}</td><td>{{if .Low}}{{printf "%.2f–%.2f" .Low .High}}{{else}}—{{end}}</td><td>{{.Verdict}}{{if .Note}}: {{.Note}}{{end}}</td></tr>
{{end}}</table>{{end}}
<h2>Throughput</h2>{{.Throughput}}
<h2>Latency percentiles</h2>{{.Latency}}
{{if .Sweep}}<h2>Throughput against concurrency</h2>{{end}}{{.Concurrency}}
{{if .R.Startup}}<h2>Startup cost of per-request CGI</h2>{{end}}{{.Startup}}
<h2>All numbers</h2>
<table><tr><th>scenario</th><th>conc</th><th>req/s</th><th>±%</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>cpu µs/req gateway</th><th>workers</th><th>loadgen</th><th>worker RSS MiB</th><th>errors</th><th>note</th></tr>
{{range .Rows}}{{if .Measured}}<tr{{if .R.Peer}} class="peer"{{end}}><td>{{.R.Scenario}}</td><td>{{.R.Concurrency}}</td><td>{{printf "%.0f" .R.RPS.Median}}</td><td>{{printf "%.0f" .R.RPS.Spread}}</td><td>{{printf "%.2f" .R.Latency.P50}}</td><td>{{printf "%.2f" .R.Latency.P90}}</td><td>{{printf "%.2f" .R.Latency.P99}}</td><td>{{printf "%.2f" .R.Latency.P999}}</td><td>{{printf "%.0f" .R.CPU.Gateway}}</td><td>{{printf "%.0f" .R.CPU.Workers}}</td><td>{{printf "%.0f" .R.CPU.LoadGen}}</td><td>{{.MiB}}</td><td>{{.R.Errors}}</td><td>{{.R.Note}}</td></tr>
{{else}}<tr class="na"><td>{{.R.Scenario}}</td><td>{{.R.Concurrency}}</td><td title="{{.Why}}">{{.Missing}}</td><td colspan="9"></td><td>{{.R.Errors}}</td><td>{{.Why}}</td></tr>
{{end}}{{end}}</table>
{{if .R.Skipped}}<h2>Skipped</h2><ul>{{range .R.Skipped}}<li>{{.Scenario}}: {{.Reason}}</li>{{end}}</ul>{{end}}
</body></html>
`))

// WriteHTML writes the report as one self-contained HTML page with inline
// SVG charts (ids chart-throughput, chart-latency, chart-concurrency when
// several concurrency levels were run, chart-startup when there is a startup
// breakdown), and the full table. It loads nothing from elsewhere.
func (rep *Report) WriteHTML(w io.Writer) error {
	if len(rep.Load.Concurrency) == 0 {
		rep.Load.Concurrency = []int{defaultConcurrency}
	}
	type htmlRow struct {
		R                 Row
		Measured          bool
		MiB, Missing, Why string
	}
	var rows []htmlRow
	for _, r := range rep.Rows {
		rows = append(rows, htmlRow{R: r, Measured: r.measured(), MiB: mib(r.TotalRSSKiB), Missing: r.noNumbers(), Why: cmpNote(&r)})
	}
	data := map[string]any{
		"R": rep, "M": rep.Machine, "Cmd": strings.Join(rep.Command, " "), "Rows": rows,
		"Throughput": throughputChart(rep), "Latency": latencyChart(rep), "Sweep": len(rep.Load.Concurrency) > 1,
	}
	if len(rep.Load.Concurrency) > 1 {
		data["Concurrency"] = concurrencyChart(rep)
	}
	if len(rep.Startup) > 0 {
		data["Startup"] = startupChart(rep)
	}
	if err := htmlPage.Execute(w, data); err != nil {
		return fmt.Errorf("benchmarks: writing HTML: %w", err)
	}
	return nil
}
