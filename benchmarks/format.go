package benchmarks

import (
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }

func mib(kib int64) string {
	if kib == 0 {
		return "-"
	}
	return f1(float64(kib) / 1024)
}

// noteText is a row's note as the text table prints it after the last
// column: apart from the right-aligned errors count.
func noteText(note string) string {
	if note == "" {
		return ""
	}
	return "  " + note
}

// WriteTable writes the report as aligned text tables: the rows, the
// startup-cost breakdown, the skipped scenarios, and the machine.
func (rep *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "%s\n\n", wrap(rep.Overview(), 100))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tconc\treq/s\t±%\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tcpu µs/req gw\tworkers\tloadgen\tworker rss MiB\terrors\t")
	for _, r := range rep.Rows {
		if !r.measured() {
			fmt.Fprintf(tw, "%s\t%d\t%s\t\t\t\t\t\t\t\t\t\t%d\t%s\n", r.Scenario, r.Concurrency, r.noNumbers(), r.Errors, noteText(cmpNote(&r)))
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%d\t%s\n", r.Scenario, r.Concurrency,
			r.RPS.Median, r.RPS.Spread, f2(r.Latency.P50), f2(r.Latency.P90), f2(r.Latency.P99), f2(r.Latency.P999),
			r.CPU.Gateway, r.CPU.Workers, r.CPU.LoadGen, mib(r.TotalRSSKiB), r.Errors, noteText(r.Note))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("benchmarks: writing table: %w", err)
	}
	if len(rep.Startup) > 0 {
		fmt.Fprintln(w, "\nStartup cost of per-request CGI (p50 latencies at the same concurrency; raw exec: one at a time):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "app/lang\tcgi p50 ms\tworker p50 ms\tstartup ms/req\tshare\traw exec ms\tcgi cpu µs\tworker cpu µs\tworker row\t")
		for _, s := range rep.Startup {
			worker, startup, share, wcpu := "n/a", "n/a", "", "n/a"
			if s.WorkerRow != "" {
				worker, startup, wcpu = f2(s.WorkerMs), f2(s.StartupMs), fmt.Sprintf("%.0f", s.WorkerCPUUs)
				if s.CGIMs > 0 {
					share = fmt.Sprintf("%.0f%%", s.StartupMs/s.CGIMs*100)
				}
			}
			fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t\n", s.App, s.Lang, f2(s.CGIMs), worker, startup, share,
				f2(s.RawExecMs), s.CGICPUUs, wcpu, s.WorkerRow)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("benchmarks: writing table: %w", err)
		}
	}
	if len(rep.Pairs) > 0 {
		fmt.Fprintln(w, "\nferry against what it replaces (ferry's req/s over the other's; higher is better for ferry; for a row that adds to another, a hop or idle connections, what is left of the other's):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, p := range rep.Pairs {
			ratio := "—"
			if p.Ratio > 0 {
				ratio = fmt.Sprintf("%.2fx", p.Ratio)
				if p.Low > 0 {
					ratio += fmt.Sprintf(" (%.2f–%.2f)", p.Low, p.High)
				}
			}
			fmt.Fprintf(tw, "  %s\tvs %s\t@%d\t%s\t%s\t%s\n", p.Ferry, p.Other, p.Concurrency, ratio, p.verdict(), p.Note)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("benchmarks: writing table: %w", err)
		}
	}
	if len(rep.Skipped) > 0 {
		fmt.Fprintln(w, "\nSkipped:")
		for _, s := range rep.Skipped {
			fmt.Fprintf(w, "  %s: %s\n", s.Scenario, s.Reason)
		}
	}
	_, err := fmt.Fprintf(w, "\n%s\nCommand: %s\n", rep.machineLine(), strings.Join(rep.Command, " "))
	if err != nil {
		return fmt.Errorf("benchmarks: writing table: %w", err)
	}
	return nil
}

// csvHeader names the CSV columns, one per number of a row.
var csvHeader = []string{"scenario", "app", "lang", "mode", "gateway", "peer", "concurrency", "runs", "requests", "errors",
	"rps_median", "rps_min", "rps_max", "rps_spread_pct", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms",
	"cpu_gateway_us", "cpu_workers_us", "cpu_loadgen_us", "worker_procs", "worker_peak_rss_kib", "worker_total_rss_kib",
	"startup_ms", "raw_exec_ms", "note"}

// WriteCSV writes one line per row; per-request CGI rows carry their startup
// cost.
func (rep *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	startup := make(map[string]Startup)
	for _, s := range rep.Startup {
		startup[s.App+"/"+s.Lang] = s
	}
	for _, r := range rep.Rows {
		su, raw := "", ""
		if s, ok := startup[r.App+"/"+r.Lang]; ok && r.Mode == "cgi" && r.Gateway == "ferry" {
			raw = f3(s.RawExecMs)
			if s.WorkerRow != "" {
				su = f3(s.StartupMs)
			}
		}
		cw.Write([]string{r.Scenario, r.App, r.Lang, r.Mode, r.Gateway, strconv.FormatBool(r.Peer), strconv.Itoa(r.Concurrency),
			strconv.Itoa(r.Runs), strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.Errors, 10),
			f1(r.RPS.Median), f1(r.RPS.Min), f1(r.RPS.Max), f1(r.RPS.Spread), f3(r.Latency.Mean), f3(r.Latency.P50), f3(r.Latency.P90),
			f3(r.Latency.P99), f3(r.Latency.P999), f3(r.Latency.Max), f1(r.CPU.Gateway), f1(r.CPU.Workers), f1(r.CPU.LoadGen),
			strconv.Itoa(r.WorkerProcs), strconv.FormatInt(r.PeakRSSKiB, 10), strconv.FormatInt(r.TotalRSSKiB, 10), su, raw, r.Note})
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("benchmarks: writing CSV: %w", err)
	}
	return nil
}

// rowKey identifies a row across reports.
func rowKey(r Row) string { return r.Scenario + "@" + strconv.Itoa(r.Concurrency) }

// WriteCompare writes, for every row in both reports, b's numbers as ratios
// of a's: above 1 means more requests per second, or more latency and CPU.
// Rows in only one report are listed after.
func WriteCompare(w io.Writer, a, b *Report) error {
	ra := make(map[string]Row)
	for _, r := range a.Rows {
		ra[rowKey(r)] = r
	}
	ratio := func(x, y float64) string {
		if x == 0 || y == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", y/x)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tconc\treq/s a\treq/s b\treq/s b/a\tp50 b/a\tp99 b/a\tcpu b/a\t")
	seen := make(map[string]bool)
	for _, r := range b.Rows {
		k := rowKey(r)
		o, ok := ra[k]
		if !ok {
			continue
		}
		seen[k] = true
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t\n", r.Scenario, r.Concurrency, o.RPS.Median, r.RPS.Median,
			ratio(o.RPS.Median, r.RPS.Median), ratio(o.Latency.P50, r.Latency.P50), ratio(o.Latency.P99, r.Latency.P99),
			ratio(o.CPU.Gateway+o.CPU.Workers, r.CPU.Gateway+r.CPU.Workers))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("benchmarks: writing comparison: %w", err)
	}
	var onlyA, onlyB []string
	for _, r := range b.Rows {
		if !seen[rowKey(r)] {
			onlyB = append(onlyB, rowKey(r))
		}
	}
	for k := range maps.Keys(ra) {
		if !seen[k] {
			onlyA = append(onlyA, k)
		}
	}
	slices.Sort(onlyA)
	for _, k := range onlyA {
		fmt.Fprintf(w, "only in a: %s\n", k)
	}
	for _, k := range onlyB {
		fmt.Fprintf(w, "only in b: %s\n", k)
	}
	return nil
}

// singleRunDrift is how far apart single runs of one build may be, in
// percent, before CompareWarnings calls it more than noise: the drift
// between runs on a shared machine.
const singleRunDrift = 25

// CompareWarnings returns a warning for every row of a and b, two reports
// of the same build (Machine.Build), whose req/s differ by more than their
// spread: their min..max intervals do not overlap (or, for single runs,
// they differ by more than 25 %). The machine changed between them, so
// neither is to be trusted for a comparison. Reports of different builds
// get no warnings: there a difference is what is measured.
func CompareWarnings(a, b *Report) []string {
	if a.Machine.Build == "" || a.Machine.Build != b.Machine.Build {
		return nil
	}
	ra := make(map[string]Row)
	for _, r := range a.Rows {
		ra[rowKey(r)] = r
	}
	var out []string
	for _, r := range b.Rows {
		o, ok := ra[rowKey(r)]
		if !ok || !o.measured() || !r.measured() {
			continue
		}
		apart := r.RPS.Min > o.RPS.Max || o.RPS.Min > r.RPS.Max
		if o.Runs < 2 || r.Runs < 2 {
			apart = math.Abs(r.RPS.Median-o.RPS.Median)/o.RPS.Median*100 > singleRunDrift
		}
		if apart {
			out = append(out, fmt.Sprintf("%s at %d: same build %s, but %.0f req/s (%.0f–%.0f) in a and %.0f (%.0f–%.0f) in b differ by more than their spread: the machine's load differed",
				r.Scenario, r.Concurrency, shortBuild(a.Machine.Build), o.RPS.Median, o.RPS.Min, o.RPS.Max, r.RPS.Median, r.RPS.Min, r.RPS.Max))
		}
	}
	return out
}

func shortBuild(b string) string {
	if len(b) > 12 && !strings.Contains(b, "@") {
		return b[:12]
	}
	return b
}

// wrap breaks s into lines of at most width bytes at spaces.
func wrap(s string, width int) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteByte('\n')
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
