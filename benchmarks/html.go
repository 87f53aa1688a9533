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

// throughputChart draws one horizontal bar per row (at each row's first
// concurrency level), peers in grey-blue.
func throughputChart(rep *Report) template.HTML {
	var rows []Row
	for _, r := range rep.Rows {
		if r.Runs > 0 && r.Concurrency == rep.Load.Concurrency[0] {
			rows = append(rows, r)
		}
	}
	maxV := 1.0
	for _, r := range rows {
		maxV = max(maxV, r.RPS.Median)
	}
	const label, width, barH = 300, 900, 18
	h := 30 + len(rows)*(barH+4)
	var b svgBuilder
	b.f(`<svg id="%s" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img"><title>Requests per second by scenario</title>`, chartThroughput, width, h)
	for i, r := range rows {
		y := 20 + i*(barH+4)
		w := float64(width-label-80) * r.RPS.Median / maxV
		fill := "#1f77b4"
		if r.Peer {
			fill = "#8c9fb4"
		}
		b.f(`<text x="%d" y="%d" font-size="12" text-anchor="end">%s</text>`, label-6, y+13, esc(r.Scenario))
		b.f(`<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %.0f req/s</title></rect>`, label, y, w, barH, fill, esc(r.Scenario), r.RPS.Median)
		b.f(`<text x="%.1f" y="%d" font-size="11">%.0f</text>`, float64(label)+w+4, y+13, r.RPS.Median)
	}
	b.f(`<text x="%d" y="12" font-size="12">requests/s (peers lighter)</text></svg>`, label)
	return template.HTML(b.String())
}

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
		b.f(`<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>`, px(t), h-bottom+14, esc(l))
	}
	b.f(`<text x="%d" y="%d" font-size="12" text-anchor="middle">%s</text>`, (left+w-right)/2, h-6, esc(p.xLabel))
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

// latencyChart draws each row's latency distribution against the
// percentile, on HdrHistogram's "1/(1-p)" axis, so the tail shows.
func latencyChart(rep *Report) template.HTML {
	p := plot{id: chartLatency, title: "Latency distribution", xLabel: "percentile", yLabel: "latency ms (log)", logX: true, logY: true,
		xTicks: []float64{1, 2, 10, 100, 1000, 10000},
		xTickLabel: func(v float64) string {
			return map[float64]string{1: "0%", 2: "50%", 10: "90%", 100: "99%", 1000: "99.9%", 10000: "99.99%"}[v]
		}}
	for _, r := range rep.Rows {
		if r.Runs == 0 || r.Concurrency != rep.Load.Concurrency[0] {
			continue
		}
		s := series{name: r.Scenario}
		for _, d := range r.Distribution {
			if d.Percentile >= 100 {
				continue
			}
			s.x = append(s.x, 1/(1-d.Percentile/100))
			s.y = append(s.y, d.Ms)
		}
		p.series = append(p.series, s)
	}
	return p.svg()
}

// concurrencyChart draws throughput against concurrency, one line per
// scenario.
func concurrencyChart(rep *Report) template.HTML {
	p := plot{id: chartConcurrency, title: "Throughput against concurrency", xLabel: "concurrency (log)", yLabel: "requests/s", logX: true,
		xTicks: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}
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
td:first-child,th:first-child{text-align:left}.peer{color:#567}.na{color:#999}
svg{display:block;margin:1em 0;font-family:system-ui,sans-serif}
</style></head><body>
<h1>ferry bench</h1>
<p>{{.M.Cores}} cores, {{.M.CPU}}, {{.M.Kernel}}, {{.M.Go}} {{.M.OS}}/{{.M.Arch}}, load {{.M.LoadAvg}}. Started {{.R.Started.Format "2006-01-02 15:04:05 MST"}}.
Profile {{.R.Profile}}, {{.R.Load.Mode}} loop, {{.R.Load.DurationS}}s per run after {{.R.Load.WarmupS}}s warm-up, {{.R.Load.Repeat}} run(s) per row.</p>
<p>Reproduce: <code>{{.Cmd}}</code></p>
<h2>Throughput</h2>{{.Throughput}}
<h2>Latency distribution</h2>{{.Latency}}
{{if .Sweep}}<h2>Throughput against concurrency</h2>{{end}}{{.Concurrency}}
{{if .R.Startup}}<h2>Startup cost of per-request CGI</h2>{{end}}{{.Startup}}
<h2>All numbers</h2>
<table><tr><th>scenario</th><th>conc</th><th>req/s</th><th>±%</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>cpu µs/req gateway</th><th>workers</th><th>loadgen</th><th>worker RSS KiB</th><th>errors</th><th>note</th></tr>
{{range .R.Rows}}<tr{{if .Peer}} class="peer"{{end}}{{if eq .Runs 0}} class="na"{{end}}><td>{{.Scenario}}</td><td>{{.Concurrency}}</td><td>{{printf "%.0f" .RPS.Median}}</td><td>{{printf "%.0f" .RPS.Spread}}</td><td>{{printf "%.2f" .Latency.P50}}</td><td>{{printf "%.2f" .Latency.P90}}</td><td>{{printf "%.2f" .Latency.P99}}</td><td>{{printf "%.2f" .Latency.P999}}</td><td>{{printf "%.0f" .CPU.Gateway}}</td><td>{{printf "%.0f" .CPU.Workers}}</td><td>{{printf "%.0f" .CPU.LoadGen}}</td><td>{{.TotalRSSKiB}}</td><td>{{.Errors}}</td><td>{{.Note}}</td></tr>
{{end}}</table>
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
	data := map[string]any{
		"R": rep, "M": rep.Machine, "Cmd": strings.Join(rep.Command, " "),
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
