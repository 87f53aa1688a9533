package serving

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
)

// countingWatcher counts its StartWatch calls and answers ready.
type countingWatcher struct {
	calls atomic.Int32
	ready atomic.Bool
}

func (w *countingWatcher) StartWatch() bool {
	w.calls.Add(1)
	return w.ready.Load()
}

// TestSweeper: a request in its handler past SweepEvery gets StartWatch,
// again at each sweep until it says the sweeper is done with it; one that
// ends before never does; the sweeper's goroutine ends with the last.
func TestSweeper(t *testing.T) {
	leakcheck.Check(t)
	var s Sweeper
	short, long, waiting := &countingWatcher{}, &countingWatcher{}, &countingWatcher{}
	short.ready.Store(true)
	long.ready.Store(true)
	s.Begin(short)
	s.Begin(long)
	s.Begin(waiting)
	s.End(short)
	time.Sleep(6 * SweepEvery)
	if n := short.calls.Load(); n != 0 {
		t.Errorf("a request over before a sweep: StartWatch called %d times; want 0", n)
	}
	if n := long.calls.Load(); n != 1 {
		t.Errorf("a request past SweepEvery: StartWatch called %d times; want 1", n)
	}
	if n := waiting.calls.Load(); n < 2 {
		t.Errorf("a request not ready for its watch: StartWatch called %d times; want one a sweep", n)
	}
	waiting.ready.Store(true)
	time.Sleep(3 * SweepEvery)
	n := waiting.calls.Load()
	time.Sleep(3 * SweepEvery)
	if m := waiting.calls.Load(); m != n {
		t.Errorf("StartWatch called again (%d, then %d) after it reported the sweeper done", n, m)
	}
	s.End(long)
	s.End(waiting)
}

// TestSweeperGoesByAge: sweeps close together, as a late ticker gives them,
// start no watch for a request first seen less than SweepEvery before; the
// first sweep SweepEvery after starts one, and the sweeper is done with the
// request.
func TestSweeperGoesByAge(t *testing.T) {
	var s Sweeper
	w := &countingWatcher{}
	w.ready.Store(true)
	s.busy = map[Watcher]time.Time{w: {}} // as Begin has it, without the goroutine
	began := time.Now()
	for range 3 {
		s.sweep(began.Add(SweepEvery / 2)) // the first sees the request
	}
	if n := w.calls.Load(); n != 0 {
		t.Errorf("three sweeps %v into a request: StartWatch called %d times; want 0", SweepEvery/2, n)
	}
	if !s.sweep(began.Add(SweepEvery / 2).Add(SweepEvery)) {
		t.Errorf("sweep reported no request left with one in its handler")
	}
	if n := w.calls.Load(); n != 1 {
		t.Errorf("a sweep %v after the request was seen: StartWatch called %d times; want 1", SweepEvery, n)
	}
	if s.sweep(began.Add(3 * SweepEvery)) {
		t.Errorf("sweep reported a request left after its watch started")
	}
	if n := w.calls.Load(); n != 1 {
		t.Errorf("StartWatch called %d times; want 1, the sweeper done with the request", n)
	}
}
