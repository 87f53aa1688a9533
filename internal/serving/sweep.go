package serving

import (
	"sync"
	"time"
)

// SweepEvery is how often a [Sweeper] looks at the requests in their
// handlers: one still there SweepEvery after a sweep first saw it gets its
// watch, so a request notices its peer going away 10-20 ms after it began
// at the earliest.
const SweepEvery = 10 * time.Millisecond

// A Watcher is a connection whose request, once it has been in its
// handler for a while, gets a read that notices the peer closing the
// connection (net/http's background read, which it starts for every
// request): most requests are over before the watch would start, and are
// spared its goroutine and system calls.
type Watcher interface {
	// StartWatch starts the watch if the request can have one yet (its
	// body may still be read by the handler). It reports whether the
	// Sweeper is done with the request: watched, or over.
	StartWatch() bool
}

// Sweeper starts the watches of the requests still in their handlers
// SweepEvery or more after a sweep first saw them there. It goes by the
// clock, not by a count of sweeps: a sweeper that runs late (its ticker's
// buffered tick, then the next, close together on a starved machine) does
// not watch every request in flight a few milliseconds in. The clock is
// read once a sweep, not once a request. Its goroutine runs only while
// requests are in their handlers. The zero value is ready to use.
type Sweeper struct {
	mu      sync.Mutex
	busy    map[Watcher]time.Time // in a handler; when a sweep first saw it (zero: not yet)
	running bool
}

// Begin registers c's request as in its handler.
func (s *Sweeper) Begin(c Watcher) {
	s.mu.Lock()
	if s.busy == nil {
		s.busy = make(map[Watcher]time.Time)
	}
	s.busy[c] = time.Time{}
	if !s.running {
		s.running = true
		go s.run()
	}
	s.mu.Unlock()
}

// End removes c's request: its handler has returned.
func (s *Sweeper) End(c Watcher) {
	s.mu.Lock()
	delete(s.busy, c)
	s.mu.Unlock()
}

func (s *Sweeper) run() {
	t := time.NewTicker(SweepEvery)
	defer t.Stop()
	for range t.C {
		// The clock, not the tick's time: a tick left in the channel
		// while the goroutine waited for a CPU is stale.
		if !s.sweep(time.Now()) {
			return
		}
	}
}

// sweep, at now, notes the requests it sees for the first time and starts
// the watches of those first seen SweepEvery or more before. It reports
// false, the goroutine's end, when no request is left.
func (s *Sweeper) sweep(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.busy) == 0 {
		s.running = false
		return false
	}
	for c, seen := range s.busy {
		switch {
		case seen.IsZero():
			s.busy[c] = now
		case now.Sub(seen) >= SweepEvery && c.StartWatch():
			delete(s.busy, c)
		}
	}
	return true
}
