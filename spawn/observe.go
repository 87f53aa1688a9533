package spawn

import (
	"os"
	"strconv"
	"time"
)

// WorkerExit says why a [Pool]'s worker ended.
type WorkerExit uint8

// Why a worker ended.
const (
	// WorkerCrashed: a non-zero status, a signal, or a clean exit right
	// after its start.
	WorkerCrashed WorkerExit = iota
	// WorkerRecycled: a clean exit after running a while, as a worker
	// does after MaxRequests.
	WorkerRecycled
	// WorkerScaledDown: stopped for being idle (IdleTimeout).
	WorkerScaledDown
	// WorkerStopped: stopped with the pool.
	WorkerStopped
)

var workerExitNames = [...]string{
	WorkerCrashed:    "crash",
	WorkerRecycled:   "max_requests",
	WorkerScaledDown: "scale-down",
	WorkerStopped:    "stop",
}

// String names the reason as metrics label it.
func (e WorkerExit) String() string {
	if int(e) < len(workerExitNames) {
		return workerExitNames[e]
	}
	return "WorkerExit(" + strconv.Itoa(int(e)) + ")"
}

// PoolObserver is told of a [Pool]'s worker starts and exits, for metrics
// and status pages. Either func may be nil. They are called from the
// pool's supervising goroutines, concurrently.
type PoolObserver struct {
	// WorkerStarted is called when a worker process has started.
	WorkerStarted func(pid int)
	// WorkerExited is called when a worker has been reaped, with why it
	// ended and how long it ran.
	WorkerExited func(pid int, why WorkerExit, ran time.Duration)
}

func (o *PoolObserver) started(pid int) {
	if o.WorkerStarted != nil {
		o.WorkerStarted(pid)
	}
}

func (o *PoolObserver) exited(pid int, why WorkerExit, ran time.Duration) {
	if o.WorkerExited != nil {
		o.WorkerExited(pid, why, ran)
	}
}

// exitCause says why a reaped worker ended, as supervise decides what
// follows: retired workers were scaled down, a clean exit after
// recycleMinRun is a recycling, a worker that exited once Stop had begun
// (stopped) was stopped, anything else is a crash.
func exitCause(retired, stopped bool, state *os.ProcessState, ran time.Duration) WorkerExit {
	switch {
	case retired:
		return WorkerScaledDown
	case stopped:
		return WorkerStopped
	case state != nil && state.Success() && ran >= recycleMinRun:
		return WorkerRecycled
	}
	return WorkerCrashed
}

// PoolStats is a snapshot of a [Pool]'s workers, for metrics and status
// pages.
type PoolStats struct {
	// Running counts the live worker processes, those being stopped for
	// idleness included.
	Running int
	// Starting counts the workers being started or waiting out a restart
	// delay.
	Starting int
	// Max is the most workers the pool runs (Workers).
	Max int
}

// Stats returns a snapshot of p's workers.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PoolStats{Running: len(p.procs), Max: p.Size()}
	if p.running && !p.stopping {
		// Each supervisor keeps one worker running, or is starting one.
		st.Starting = max(0, p.sups-len(p.procs))
	}
	return st
}
