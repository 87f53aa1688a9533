package benchmarks

import (
	"fmt"
	"io"
	"strings"
)

// Overview returns the one-paragraph summary every format starts with:
// what per-request CGI costs over long-lived workers, how ferry's recipes
// compare with what they replace, and whether the numbers can be trusted
// (failed rows, a busy machine).
func (rep *Report) Overview() string {
	var parts []string
	var costs []string
	for _, s := range rep.Startup {
		if s.WorkerRow != "" && s.App == "hello" {
			costs = append(costs, fmt.Sprintf("%.1f ms for %s", s.StartupMs, langName(s.Lang)))
		}
	}
	if len(costs) > 0 {
		parts = append(parts, "Per-request CGI costs "+strings.Join(costs, ", ")+" per request over long-lived workers (p50).")
	}
	byName := make(map[string]Row)
	for _, r := range rep.Rows {
		byName[rowKey(r)] = r
	}
	var cmp []string
	for _, p := range rep.Pairs {
		if p.Ratio == 0 || !strings.HasPrefix(p.Ferry, "hello/") || !headlinePair(p) {
			continue
		}
		f := byName[p.Ferry+"@"+fmt.Sprint(p.Concurrency)]
		s := fmt.Sprintf("%s serves %.0f req/s, %.2f× %s", describe(p.Ferry), f.RPS.Median, p.Ratio, describe(p.Other))
		if p.WithinNoise && p.Note == "" {
			s += " (within noise)"
		}
		cmp = append(cmp, s)
	}
	if len(cmp) > 0 {
		parts = append(parts, "At concurrency "+fmt.Sprint(rep.Load.Concurrency[0])+": "+strings.Join(cmp, "; ")+".")
	}
	if len(rep.Failed) > 0 {
		parts = append(parts, fmt.Sprintf("Every request failed in %s: those rows show errors, not req/s.", strings.Join(rep.Failed, ", ")))
	}
	if l := rep.MachineLoad; l != nil && l.Busy {
		parts = append(parts, strings.ToUpper(l.Reason[:1])+l.Reason[1:]+".")
	}
	if len(parts) == 0 {
		return "No comparison to summarise: run the bundled scenarios (ferry bench with no target) for one."
	}
	return strings.Join(parts, " ")
}

// headlinePair reports whether p belongs in the overview: the README's
// recipes against the servers they replace, and the FastCGI hop through
// ferry against the Go app served directly.
func headlinePair(p Pair) bool {
	if p.Over {
		return strings.HasSuffix(p.Ferry, "/go/fastcgi/ferry")
	}
	for _, g := range []string{"/nginx-php-fpm", "/ferry-php-fpm-newconn", "/nginx-uwsgi", "/apache-mod_php", "/sh/cgi/nginx-fcgiwrap", "/sh/cgi/apache-mod_cgid"} {
		if strings.HasSuffix(p.Other, g) {
			return true
		}
	}
	return false
}

// describe names a scenario's gateway in words for the overview.
func describe(scenario string) string {
	names := map[string]string{
		"ferry-php-fpm":         "ferry in front of php-fpm",
		"ferry-php-fpm-newconn": "a connection per request (max_conns unset)",
		"ferry-php-fpm-cpus1":   "ferry on one CPU (cpus = 1)",
		"nginx-php-fpm":         "nginx",
		"ferry+uwsgi":           "ferry in front of uwsgi (SCGI)",
		"nginx-uwsgi":           "nginx scgi_pass",
		"nginx-ferry-fastcgi":   "nginx → ferry FastCGI → cgi-bin (sh)",
		"nginx-fcgiwrap":        "nginx → fcgiwrap",
		"ferry":                 "ferry's cgi-bin (sh)",
		"apache-mod_cgid":       "Apache mod_cgid",
		"apache-ferry-php-cgi":  "Apache → ferry → php-cgi workers",
		"apache-mod_php":        "Apache mod_php",
	}
	// Rows whose gateway name alone is ambiguous, by LANG/MODE/GATEWAY.
	rows := map[string]string{
		"go/fastcgi/ferry": "ferry in front of the Go app's fastcgi.Serve",
		"go/http/net/http": "the Go app on net/http directly",
	}
	if _, row, ok := strings.Cut(scenario, "/"); ok {
		if n, ok := rows[row]; ok {
			return n
		}
	}
	if n, ok := names[gatewayOf(scenario)]; ok {
		return n
	}
	return scenario
}

func langName(lang string) string {
	if n, ok := map[string]string{"sh": "sh", "perl": "Perl", "python": "Python", "php": "PHP", "go": "Go"}[lang]; ok {
		return n
	}
	return lang
}

// mdCell escapes a table cell.
func mdCell(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) }

// WriteMarkdown writes the report as Markdown for pasting into an issue:
// the overview, the comparisons, every row, the startup costs, the skipped
// scenarios and the machine.
func (rep *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("## ferry bench\n\n%s\n\n", rep.Overview())
	if len(rep.Pairs) > 0 {
		p("### ferry against what it replaces\n\nRatio: ferry's req/s over the other's (higher is better for ferry; for a row that adds to another, a hop or idle connections, what is left of the other's); the range comes from the runs' extremes.\n\n")
		p("| ferry row | compared with | conc | ratio | range | verdict |\n|---|---|---:|---:|---:|---|\n")
		for _, pr := range rep.Pairs {
			ratio, rng := "—", "—"
			if pr.Ratio > 0 {
				ratio = fmt.Sprintf("%.2f×", pr.Ratio)
				if pr.Low > 0 {
					rng = fmt.Sprintf("%.2f–%.2f", pr.Low, pr.High)
				}
			}
			verdict := pr.verdict()
			if pr.Note != "" {
				verdict += ": " + pr.Note
			}
			p("| %s | %s | %d | %s | %s | %s |\n", mdCell(pr.Ferry), mdCell(pr.Other), pr.Concurrency, ratio, rng, mdCell(verdict))
		}
		p("\n")
	}
	p("### Every row\n\n| scenario | conc | req/s | ±%% | p50 ms | p99 ms | p99.9 ms | CPU µs/req (gateway + workers) | worker RSS MiB | errors | note |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rep.Rows {
		if !r.measured() {
			p("| %s | %d | %s | | | | | | | %d | %s |\n", mdCell(r.Scenario), r.Concurrency, r.noNumbers(), r.Errors, mdCell(cmpNote(&r)))
			continue
		}
		p("| %s | %d | %.0f | %.0f | %s | %s | %s | %.0f | %s | %d | %s |\n", mdCell(r.Scenario), r.Concurrency, r.RPS.Median, r.RPS.Spread,
			f2(r.Latency.P50), f2(r.Latency.P99), f2(r.Latency.P999), r.CPU.Gateway+r.CPU.Workers, mib(r.TotalRSSKiB), r.Errors, mdCell(r.Note))
	}
	if len(rep.Startup) > 0 {
		p("\n### Startup cost of per-request CGI\n\n| app/lang | CGI p50 ms | worker p50 ms | startup ms/req | raw exec ms |\n|---|---:|---:|---:|---:|\n")
		for _, s := range rep.Startup {
			worker, startup := "—", "—"
			if s.WorkerRow != "" {
				worker, startup = f2(s.WorkerMs), f2(s.StartupMs)
			}
			p("| %s/%s | %s | %s | %s | %s |\n", s.App, s.Lang, f2(s.CGIMs), worker, startup, f2(s.RawExecMs))
		}
	}
	if len(rep.Skipped) > 0 {
		p("\n### Skipped\n\n")
		for _, s := range rep.Skipped {
			p("- %s: %s\n", mdCell(s.Scenario), mdCell(s.Reason))
		}
	}
	p("\n%s\n\nCommand: `%s`\n", rep.machineLine(), strings.Join(rep.Command, " "))
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("benchmarks: writing Markdown: %w", err)
	}
	return nil
}

// MachineLine describes the machine, its load during the run and the load
// settings, in one line, as every format shows them.
func (rep *Report) MachineLine() string { return rep.machineLine() }

// machineLine describes the machine, its load during the run and the load
// settings, in one line.
func (rep *Report) machineLine() string {
	m := rep.Machine
	s := fmt.Sprintf("Machine: %d cores, %s, %s, %s %s/%s.", m.Cores, m.CPU, m.Kernel, m.Go, m.OS, m.Arch)
	if m.Build != "" {
		s += " Build " + shortBuild(m.Build) + "."
	}
	if l := rep.MachineLoad; l != nil {
		s += fmt.Sprintf(" Load average %s before, %s after; other processes took %.0f%% of the CPU, this run %.0f%%.", l.LoadBefore, l.LoadAfter, l.OtherCPUPct, l.OwnCPUPct)
		if l.Busy {
			s += " " + strings.ToUpper(l.Reason[:1]) + l.Reason[1:] + "."
		}
	} else {
		s += " Load average " + m.LoadAvg + "."
	}
	return s + fmt.Sprintf(" Profile %s, %s loop, %gs per run after %gs warm-up, %d run(s) per row.",
		rep.Profile, rep.Load.Mode, rep.Load.DurationS, rep.Load.WarmupS, rep.Load.Repeat)
}
