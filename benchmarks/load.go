package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// loadTarget is what the load generator sends requests to.
type loadTarget interface {
	// Do sends one request and reads the whole response. It returns the
	// response status, or an error when no response came (the connection
	// failed, ctx ended).
	Do(ctx context.Context) (status int, err error)
	// Close releases the target's connections.
	Close() error
}

// Defaults for the zero fields of loadPlan.
const (
	defaultConcurrency = 8
	defaultDuration    = 2 * time.Second
	defaultTimeout     = 30 * time.Second
)

// loadPlan describes one run of the load generator.
//
// Closed loop (Rate zero): Concurrency workers each send a request, wait for
// the answer and send the next, as wrk does. Latency is measured from send to
// end of response.
//
// Open loop (Rate positive): requests are due at a constant rate, request i at
// start + i/Rate, whatever happened to the ones before, and latency is
// measured from that intended send time, so a server stall shows as the
// latency of every request that should have gone out during it, not of one
// (no coordinated omission). Concurrency bounds the requests in flight; when
// they are all busy, due requests wait, and their wait counts.
type loadPlan struct {
	// Concurrency is the number of workers. If zero, defaultConcurrency.
	Concurrency int
	// Duration is how long the measured part lasts. If zero and Requests is
	// zero, defaultDuration.
	Duration time.Duration
	// Requests, if positive, ends the measured part after that many
	// requests (whichever of Duration and Requests comes first when both are
	// set).
	Requests int64
	// Rate, if positive, is the open-loop request rate per second.
	Rate float64
	// Warmup is sent before the measured part and left out of the results.
	Warmup time.Duration
	// Timeout bounds each request. If zero, defaultTimeout.
	Timeout time.Duration
	// Progress, if set, is called about five times a second with the
	// fraction of the run done, from 0 to 1, from a goroutine of its own.
	Progress func(done float64)
}

func (l *loadPlan) concurrency() int {
	if l.Concurrency > 0 {
		return l.Concurrency
	}
	return defaultConcurrency
}

func (l *loadPlan) duration() time.Duration {
	if l.Duration == 0 && l.Requests <= 0 {
		return defaultDuration
	}
	return l.Duration
}

func (l *loadPlan) timeout() time.Duration {
	if l.Timeout > 0 {
		return l.Timeout
	}
	return defaultTimeout
}

// runResult is the outcome of a run: only the requests sent after the warm-up
// count.
type runResult struct {
	// Latency holds the latency of every measured request, errors included,
	// in nanoseconds.
	Latency histogram
	// Requests is the number of measured requests; OK those that got a 2xx
	// answer.
	Requests, OK int64
	// Errors counts the failed requests by kind: "status 502" for each
	// status that is not 2xx, "timeout", "transport".
	Errors map[string]int64
	// FirstError describes the first failure, to show what went wrong.
	FirstError string
	// Elapsed is the measured time, from the end of the warm-up to the end
	// of the last measured request.
	Elapsed time.Duration
	// CPU is the CPU time this process and its reaped children used during
	// the measured part, from the OS (getrusage).
	CPU cpuUsage
}

// Throughput returns the measured requests per second.
func (r *runResult) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// ErrorCount returns the number of failed requests.
func (r *runResult) ErrorCount() int64 { return r.Requests - r.OK }

// shard is a part of the results that a subset of the workers record into,
// so that workers rarely contend for one lock.
type shard struct {
	mu     sync.Mutex // guards the rest
	h      histogram
	n, ok  int64
	errs   map[string]int64
	first  string
	lastAt int64 // unix nanoseconds of the last measured request's end
}

func (s *shard) record(lat time.Duration, end time.Time, status int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h.RecordDuration(lat)
	s.n++
	s.lastAt = max(s.lastAt, end.UnixNano())
	kind := ""
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		kind = "timeout"
	case err != nil:
		kind = "transport"
	case status < 200 || status > 299:
		kind = fmt.Sprintf("status %d", status)
	default:
		s.ok++
		return
	}
	if s.errs == nil {
		s.errs = make(map[string]int64)
	}
	s.errs[kind]++
	if s.first == "" {
		if err != nil {
			s.first = err.Error()
		} else {
			s.first = kind
		}
	}
}

// runLoad sends the load l to t and returns the measured results. It returns
// early, with what was measured so far and ctx's error, if ctx ends.
func runLoad(ctx context.Context, t loadTarget, l loadPlan) (*runResult, error) {
	conc := l.concurrency()
	dur := l.duration()
	shards := make([]shard, min(conc, 4*runtime.GOMAXPROCS(0)))
	start := time.Now()
	measureFrom := start.Add(l.Warmup)
	var deadline time.Time
	if dur > 0 {
		deadline = measureFrom.Add(dur)
	}
	var issued atomic.Int64 // measured requests started (closed loop) or next index (open loop)
	var measuredDone atomic.Int64

	// The CPU counters are read when the measured part starts and ends.
	var cpuStart cpuUsage
	var cpuOnce sync.Once
	markStart := func() { cpuOnce.Do(func() { cpuStart = selfUsage() }) }
	if l.Warmup <= 0 {
		markStart()
	} else {
		timer := time.AfterFunc(l.Warmup, markStart)
		defer timer.Stop()
	}

	stopProgress := startProgress(l.Progress, func() float64 {
		switch {
		case time.Now().Before(measureFrom):
			return 0
		case l.Requests > 0 && dur > 0:
			return max(float64(measuredDone.Load())/float64(l.Requests), time.Since(measureFrom).Seconds()/dur.Seconds())
		case l.Requests > 0:
			return float64(measuredDone.Load()) / float64(l.Requests)
		default:
			return time.Since(measureFrom).Seconds() / dur.Seconds()
		}
	})

	send := func() (time.Time, int, error) {
		rctx, cancel := context.WithTimeout(ctx, l.timeout())
		defer cancel()
		status, err := t.Do(rctx)
		return time.Now(), status, err
	}

	var wg sync.WaitGroup
	for w := range conc {
		sh := &shards[w%len(shards)]
		wg.Go(func() {
			if l.Rate > 0 {
				openLoopWorker(ctx, sh, &l, start, measureFrom, deadline, &issued, &measuredDone, send)
				return
			}
			for ctx.Err() == nil {
				now := time.Now()
				if !deadline.IsZero() && !now.Before(deadline) {
					return
				}
				measured := !now.Before(measureFrom)
				if measured && l.Requests > 0 && issued.Add(1) > l.Requests {
					return
				}
				end, status, err := send()
				if measured {
					sh.record(end.Sub(now), end, status, err)
					measuredDone.Add(1)
				}
			}
		})
	}
	wg.Wait()
	stopProgress()
	markStart() // a run shorter than its warm-up
	cpuEnd := selfUsage()

	res := &runResult{CPU: cpuEnd.Sub(cpuStart)}
	var last int64
	for i := range shards {
		s := &shards[i]
		res.Latency.Merge(&s.h)
		res.Requests += s.n
		res.OK += s.ok
		for k, v := range s.errs {
			if res.Errors == nil {
				res.Errors = make(map[string]int64)
			}
			res.Errors[k] += v
		}
		if res.FirstError == "" {
			res.FirstError = s.first
		}
		last = max(last, s.lastAt)
	}
	if last > 0 {
		res.Elapsed = time.Unix(0, last).Sub(measureFrom)
		if l.Rate > 0 && !deadline.IsZero() {
			// Open loop: the measured window is the schedule's, unless the
			// answers came later.
			res.Elapsed = max(res.Elapsed, deadline.Sub(measureFrom))
		}
	}
	return res, ctx.Err()
}

// openLoopWorker takes due requests off the schedule in order and sends
// each at its due time (or at once, if late), recording its latency from the
// due time.
func openLoopWorker(ctx context.Context, sh *shard, l *loadPlan, start, measureFrom, deadline time.Time,
	next, measuredDone *atomic.Int64, send func() (time.Time, int, error)) {
	interval := float64(time.Second) / l.Rate
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	warm := int64(0)
	if l.Warmup > 0 {
		warm = int64(float64(l.Warmup) / interval)
	}
	for ctx.Err() == nil {
		i := next.Add(1) - 1
		if l.Requests > 0 && i-warm >= l.Requests {
			return
		}
		due := start.Add(time.Duration(float64(i) * interval))
		if !deadline.IsZero() && !due.Before(deadline) {
			return
		}
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		end, status, err := send()
		if !due.Before(measureFrom) {
			sh.record(end.Sub(due), end, status, err)
			measuredDone.Add(1)
		}
	}
}

// startProgress calls report with done() about five times a second until the
// returned stop is called, which reports 1 last.
func startProgress(report func(float64), done func() float64) (stop func()) {
	if report == nil {
		return func() {}
	}
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				report(1)
				return
			case <-tick.C:
				report(min(done(), 1))
			}
		}
	})
	return func() {
		close(quit)
		wg.Wait()
	}
}
