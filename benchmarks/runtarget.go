package benchmarks

import (
	"context"
	"fmt"
	"time"
)

// TargetOptions configures RunTarget.
type TargetOptions struct {
	// Profile is "quick" (default) or "full", which sweeps concurrency 1, 4,
	// 16 and 64 with three runs each unless Concurrency and Repeat say
	// otherwise.
	Profile string
	// Concurrency are the levels run. If nil, 8 (quick).
	Concurrency []int
	// Duration is the measured time per run, Requests the measured
	// requests per run (whichever comes first when both are set), Rate the
	// open-loop request rate per second (zero: closed loop) and Warmup the
	// load sent first and left out of the results. If Duration and Requests
	// are zero, 2s; if Warmup is zero, 0.5s.
	Duration time.Duration
	Requests int64
	Rate     float64
	Warmup   time.Duration
	// Repeat is the number of runs per level. If zero: 1, or 3 for full.
	Repeat int
	// Command is recorded in the report.
	Command []string
	// Progress, if set, is told the level being run and how far it is.
	Progress func(name string, i, n int, done float64)
	// Done, if set, is given each row as soon as it is done.
	Done func(Row)
}

// RunTarget loads one target at each concurrency level and returns a
// report with a row per level. The load generator's CPU time includes the
// client side of in-process targets. addr is in ferry's spelling:
//
//	http://HOST:PORT/PATH, https://...      an HTTP server (keep-alive)
//	fastcgi://HOST:PORT/PATH                a FastCGI application, such as php-fpm
//	fastcgi+unix:///run/php/fpm.sock        the same on a unix socket (path from req.Path)
//	scgi://HOST:PORT/PATH                   an SCGI application, such as uwsgi --scgi-socket
//	scgi+unix:///run/app.sock               the same on a unix socket (path from req.Path)
//	cgi:/path/script                        a CGI script, run per request in this process
//
// FastCGI addresses take ?max_conns=N: the connections kept open, which
// should be the application's worker count (php-fpm's pm.max_children). If
// absent, the concurrency level is used. SCGI addresses take it too: there
// it bounds the requests in progress, each on a connection of its own
// (SCGI has no keep-alive). Other query parameters of a fastcgi:// or
// scgi:// address are the request's query.
//
// When every request of a level fails, the report is returned with
// ErrAllFailed.
func RunTarget(ctx context.Context, addr string, req Request, o TargetOptions) (*Report, error) {
	if o.Profile == "" {
		o.Profile = "quick"
	}
	levels := o.Concurrency
	repeat := o.Repeat
	if len(levels) == 0 {
		levels = []int{defaultConcurrency}
		if o.Profile == "full" {
			levels = []int{1, 4, 16, 64}
		}
	}
	if repeat <= 0 {
		repeat = 1
		if o.Profile == "full" {
			repeat = 3
		}
	}
	warm := o.Warmup
	if warm == 0 {
		warm = 500 * time.Millisecond
	}
	l := loadPlan{Duration: o.Duration, Requests: o.Requests, Rate: o.Rate, Warmup: warm}
	mode := "closed"
	if o.Rate > 0 {
		mode = "open"
	}
	rep := &Report{Schema: schemaVersion, Command: o.Command, Started: time.Now().UTC(), Machine: describeMachine(), Profile: o.Profile,
		Load: LoadSpec{Mode: mode, Concurrency: levels, Rate: o.Rate, DurationS: l.duration().Seconds(), Requests: o.Requests,
			WarmupS: warm.Seconds(), Repeat: repeat}}
	// Fail early on an address that cannot work.
	t, err := newTarget(addr, req, 1)
	if err != nil {
		return nil, err
	}
	t.Close()
	meter := startLoadMeter()
	for i, c := range levels {
		row := Row{Scenario: "target", App: "target", Lang: "-", Mode: mode, Gateway: "-", Target: addr, Concurrency: c}
		lc := l
		lc.Concurrency = c
		if o.Progress != nil {
			lc.Progress = func(f float64) { o.Progress(fmt.Sprintf("%s at concurrency %d", addr, c), i, len(levels), f) }
		}
		measureRow(ctx, &row, addr, req, procTrees{}, lc, repeat)
		rep.Rows = append(rep.Rows, row)
		if o.Done != nil {
			o.Done(row)
		}
		if err := ctx.Err(); err != nil {
			rep.finish(meter)
			return rep, err
		}
	}
	return rep, rep.finish(meter)
}
