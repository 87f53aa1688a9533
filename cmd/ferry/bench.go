package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ferrygw/ferry"
	"github.com/ferrygw/ferry/benchmarks"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/spf13/pflag"
)

const benchUsage = `Usage:
  ferry bench [flags]                 run the bundled scenarios (the same app in sh, Perl,
                                      Python, PHP and Go, per-request CGI against long-lived
                                      workers, and the installed peers) and print a table
  ferry bench [flags] TARGET          load one target
  ferry bench compare A.json B.json   compare two JSON reports (ratios B/A)

Targets:
  http://HOST:PORT/PATH               an HTTP server (keep-alive connections)
  fastcgi://HOST:PORT/PATH            a FastCGI application such as php-fpm, no web server in
                                      front: SCRIPT_FILENAME is --root joined with PATH, or
                                      --script; ?max_conns=N keeps N connections (php-fpm's
                                      pm.max_children; default --concurrency)
  fastcgi+unix:///run/php/fpm.sock    the same on a unix socket (the path comes from --path)
  scgi://HOST:PORT/PATH               an SCGI application such as uwsgi --scgi-socket, no web
                                      server in front: a connection per request; PATH is
                                      PATH_INFO; ?max_conns=N bounds the requests in progress
                                      (default --concurrency)
  scgi+unix:///run/app.sock           the same on a unix socket (the path comes from --path)
  cgi:/path/script                    a CGI script, one process per request, run by ferry in
                                      this process

Load: closed loop by default (--concurrency workers, each waiting for its answer); with
--rate, open loop: requests are due at a constant rate and latency counts from the due
time, so stalls are not hidden (no coordinated omission).

Flags:
`

func bench(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == benchmarks.HelperArg {
		if err := benchmarks.RunHelper(context.Background(), args[1:]); err != nil {
			fmt.Fprintf(stderr, "ferry bench: %v\n", err)
			return 1
		}
		return 0
	}
	if len(args) > 0 && args[0] == "compare" {
		return benchCompare(args[1:], stdout, stderr)
	}
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	fs.SortFlags = false
	method := fs.String("method", "GET", "request method")
	body := fs.String("body", "", "request body (@FILE reads a file)")
	headers := fs.StringArray("header", nil, "request header 'Name: value' (repeatable)")
	path := fs.String("path", "", "request path and query, for fastcgi+unix:, scgi+unix: and cgi: targets")
	root := fs.String("root", "", "DOCUMENT_ROOT for fastcgi and scgi targets (fastcgi: SCRIPT_FILENAME is ROOT/PATH); default: the current directory for fastcgi, none for scgi")
	script := fs.String("script", "", "SCRIPT_FILENAME for fastcgi and scgi targets, whatever the path")
	duration := fs.Duration("duration", 0, "measured time per run (default 2s for a target; 1s, 3s with --profile full, for the scenarios)")
	requests := fs.Int64("requests", 0, "measured requests per run (instead of, or with, --duration)")
	concurrency := fs.IntSlice("concurrency", nil, "concurrent workers; several values sweep (default 8; 1,4,16,64 with --profile full)")
	rate := fs.Float64("rate", 0, "open loop: requests per second (0: closed loop)")
	warmup := fs.Duration("warmup", 0, "warm-up before each measured part, left out of the results (default 0.5s for a target)")
	repeat := fs.Int("repeat", 0, "runs per row; the median is shown with the spread (default 1; 3 with --profile full)")
	format := fs.String("format", "table", "output: table, json or csv")
	htmlOut := fs.String("html", "", "also write a self-contained HTML report with charts to this file")
	mdOut := fs.String("markdown", "", "also write a Markdown report, for pasting into an issue, to this file")
	profile := fs.String("profile", "quick", "quick (about two minutes) or full (concurrency sweep, repeated runs)")
	only := fs.String("only", "", "run only the scenarios whose name holds this (such as python/ or /cgi/)")
	apps := fs.String("apps", "", "directory of the bundled apps (default: testdata/bench, searched upward from here)")
	help := func(w io.Writer) {
		fmt.Fprint(w, benchUsage)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, "bench", stdout, stderr, func(w io.Writer) { fs.SetOutput(w); help(w) }); !ok {
		return code
	}
	if *format != "table" && *format != "json" && *format != "csv" {
		fmt.Fprintf(stderr, "ferry bench: --format %q: want table, json or csv\n", *format)
		return 2
	}
	if *profile != "quick" && *profile != "full" {
		fmt.Fprintf(stderr, "ferry bench: --profile %q: want quick or full\n", *profile)
		return 2
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "ferry bench: one target at most, got %d\n", fs.NArg())
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	command := append([]string{"ferry", "bench"}, args...)
	bar := newProgressBar(stderr)

	var rep *benchmarks.Report
	var err error
	if fs.NArg() == 0 {
		exe, xerr := os.Executable()
		if xerr != nil {
			fmt.Fprintf(stderr, "ferry bench: %v\n", xerr)
			return 1
		}
		dir := *apps
		if dir == "" {
			dir = findApps()
		}
		if dir == "" {
			// An installed binary: the apps it carries.
			tmp, terr := os.MkdirTemp("", "ferry-bench-apps-")
			if terr == nil {
				defer os.RemoveAll(tmp)
				terr = ferry.WriteBenchApps(tmp)
			}
			if terr != nil {
				fmt.Fprintf(stderr, "ferry bench: %v\n", terr)
				return 1
			}
			if err := peers.MakeWorldReadable(tmp); err != nil {
				fmt.Fprintf(stderr, "ferry bench: %v\n", err)
				return 1
			}
			dir = tmp
		}
		cfg := benchmarks.Config{Apps: dir, Self: []string{exe, "bench"}, Profile: *profile, Concurrency: *concurrency,
			Duration: *duration, Warmup: *warmup, Repeat: *repeat, Only: *only, Command: command}
		if bar != nil {
			cfg.Progress = bar.scenario
		} else {
			cfg.Done = progressLine(stderr)
		}
		rep, err = benchmarks.RunScenarios(ctx, cfg)
	} else {
		req := benchmarks.Request{Method: *method, Path: *path, Root: *root, Script: *script, Header: make(http.Header)}
		for _, h := range *headers {
			k, v, ok := strings.Cut(h, ":")
			if !ok {
				fmt.Fprintf(stderr, "ferry bench: --header %q: want 'Name: value'\n", h)
				return 2
			}
			req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		if f, ok := strings.CutPrefix(*body, "@"); ok {
			b, rerr := os.ReadFile(f)
			if rerr != nil {
				fmt.Fprintf(stderr, "ferry bench: --body: %v\n", rerr)
				return 2
			}
			req.Body = b
		} else {
			req.Body = []byte(*body)
		}
		opts := benchmarks.TargetOptions{Profile: *profile, Concurrency: *concurrency, Duration: *duration, Requests: *requests,
			Rate: *rate, Warmup: *warmup, Repeat: *repeat, Command: command}
		if bar != nil {
			opts.Progress = bar.scenario
		} else {
			opts.Done = progressLine(stderr)
		}
		rep, err = benchmarks.RunTarget(ctx, fs.Arg(0), req, opts)
	}
	bar.done()
	if err != nil && rep == nil {
		fmt.Fprintf(stderr, "ferry bench: %v\n", err)
		return 1
	}
	code := 0
	switch {
	case errors.Is(err, benchmarks.ErrAllFailed):
		fmt.Fprintf(stderr, "ferry bench: %v: the report shows the errors instead of req/s\n", err)
		code = 1
	case err != nil:
		fmt.Fprintf(stderr, "ferry bench: %v (partial results follow)\n", err)
		code = 1
	}
	if l := rep.MachineLoad; l != nil && l.Busy {
		fmt.Fprintf(stderr, "ferry bench: %s\n", l.Reason)
	}
	switch *format {
	case "json":
		err = rep.WriteJSON(stdout)
	case "csv":
		err = rep.WriteCSV(stdout)
	default:
		err = rep.WriteTable(stdout)
	}
	if err == nil && *htmlOut != "" {
		err = writeReportFile(*htmlOut, rep.WriteHTML)
	}
	if err == nil && *mdOut != "" {
		err = writeReportFile(*mdOut, rep.WriteMarkdown)
	}
	if err != nil {
		fmt.Fprintf(stderr, "ferry bench: %v\n", err)
		return 1
	}
	return code
}

// writeReportFile writes a report to the file name with write.
func writeReportFile(name string, write func(io.Writer) error) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func benchCompare(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "Usage: ferry bench compare A.json B.json")
		return 2
	}
	var reps [2]*benchmarks.Report
	for i, name := range args {
		f, err := os.Open(name)
		if err != nil {
			fmt.Fprintf(stderr, "ferry bench compare: %v\n", err)
			return 1
		}
		reps[i], err = benchmarks.ReadReport(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "ferry bench compare: %s: %v\n", name, err)
			return 1
		}
	}
	if err := benchmarks.WriteCompare(stdout, reps[0], reps[1]); err != nil {
		fmt.Fprintf(stderr, "ferry bench compare: %v\n", err)
		return 1
	}
	for _, w := range benchmarks.CompareWarnings(reps[0], reps[1]) {
		fmt.Fprintf(stderr, "ferry bench compare: warning: %s\n", w)
	}
	return 0
}

// findApps returns testdata/bench in the current directory or the nearest
// parent that has one, or "".
func findApps() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		p := filepath.Join(dir, "testdata", "bench")
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// progressLine returns a function that writes one line per finished row
// to w, for when stderr is not a terminal (CI, a pipe to tee): a long run
// is never silent.
func progressLine(w io.Writer) func(benchmarks.Row) {
	return func(r benchmarks.Row) {
		switch {
		case r.Runs == 0 && strings.HasPrefix(r.Note, "skipped: "):
			fmt.Fprintf(w, "ferry bench: %s: %s\n", r.Scenario, r.Note)
		case r.Runs == 0 && r.Note != "":
			fmt.Fprintf(w, "ferry bench: %s: n/a: %s\n", r.Scenario, r.Note)
		case r.Requests > 0 && r.Errors == r.Requests:
			fmt.Fprintf(w, "ferry bench: %s at %d: every request failed\n", r.Scenario, r.Concurrency)
		default:
			fmt.Fprintf(w, "ferry bench: %s at %d: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d errors\n", r.Scenario, r.Concurrency,
				r.RPS.Median, r.Latency.P50, r.Latency.P99, r.Errors)
		}
	}
}

// progressBar draws one line on a terminal: the scenario and how far the run
// is. It is nil when stderr is not a terminal.
type progressBar struct {
	w io.Writer
}

func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return nil
	}
	return &progressBar{w: w}
}

func (b *progressBar) scenario(name string, i, n int, done float64) {
	total := (float64(i) + done) / float64(max(n, 1))
	const width = 30
	fill := int(total * width)
	fmt.Fprintf(b.w, "\r\033[K[%s%s] %3.0f%% %d/%d %s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), total*100, i+1, n, name)
}

func (b *progressBar) done() {
	if b != nil {
		fmt.Fprint(b.w, "\r\033[K")
	}
}
