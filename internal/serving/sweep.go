package serving

import (
	"sync"
	"time"
)

// SweepEvery is how often a [Sweeper] looks at the requests in their
// handlers: one seen at two sweeps in a row gets its watch, so a request
// notices its peer going away 10-20 ms after it began at the earliest.
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

// Sweeper starts the watches of the requests that stay in their handlers
// past two sweeps. Its goroutine runs only while requests are in their
// handlers. The zero value is ready to use.
type Sweeper struct {
	mu      sync.Mutex
	busy    map[Watcher]bool // in a handler; true once seen by a sweep
	running bool
}

// Begin registers c's request as in its handler.
func (s *Sweeper) Begin(c Watcher) {
	s.mu.Lock()
	if s.busy == nil {
		s.busy = make(map[Watcher]bool)
	}
	s.busy[c] = false
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
		s.mu.Lock()
		if len(s.busy) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		for c, seen := range s.busy {
			if !seen {
				s.busy[c] = true
				continue
			}
			if c.StartWatch() {
				delete(s.busy, c)
			}
		}
		s.mu.Unlock()
	}
}
