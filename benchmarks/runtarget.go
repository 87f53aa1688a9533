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
	// Concurrency are the levels run. If nil, DefaultConcurrency (quick).
	Concurrency []int
	// Duration, Requests, Rate and Warmup are as in Load. If Duration and
	// Requests are zero, DefaultDuration; if Warmup is zero, 0.5s.
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
}

// RunTarget loads one target (see NewTarget for the addresses) at each
// concurrency level and returns a report with a row per level. The load
// generator's CPU time includes the client side of in-process targets.
func RunTarget(ctx context.Context, addr string, req Request, o TargetOptions) (*Report, error) {
	if o.Profile == "" {
		o.Profile = "quick"
	}
	levels := o.Concurrency
	repeat := o.Repeat
	if len(levels) == 0 {
		levels = []int{DefaultConcurrency}
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
	l := Load{Duration: o.Duration, Requests: o.Requests, Rate: o.Rate, Warmup: warm}
	mode := "closed"
	if o.Rate > 0 {
		mode = "open"
	}
	rep := &Report{Schema: SchemaVersion, Command: o.Command, Started: time.Now().UTC(), Machine: DescribeMachine(), Profile: o.Profile,
		Load: LoadSpec{Mode: mode, Concurrency: levels, Rate: o.Rate, DurationS: l.duration().Seconds(), Requests: o.Requests,
			WarmupS: warm.Seconds(), Repeat: repeat}}
	// Fail early on an address that cannot work.
	t, err := NewTarget(addr, req, 1)
	if err != nil {
		return nil, err
	}
	t.Close()
	for i, c := range levels {
		row := Row{Scenario: "target", App: "target", Lang: "-", Mode: mode, Gateway: "-", Target: addr, Concurrency: c}
		lc := l
		lc.Concurrency = c
		if o.Progress != nil {
			lc.Progress = func(f float64) { o.Progress(fmt.Sprintf("%s at concurrency %d", addr, c), i, len(levels), f) }
		}
		measureRow(ctx, &row, addr, req, Trees{}, lc, repeat)
		rep.Rows = append(rep.Rows, row)
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	return rep, nil
}
