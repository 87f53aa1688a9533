package cgi

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoSlot is returned by [Limiter.Acquire] when no slot came free: the
// queue of waiting requests was full, or the wait timed out. A gateway
// answers 503 Service Unavailable.
var ErrNoSlot = errors.New("cgi: no request slot free: too many requests waiting, or waiting too long")

// Limiter bounds how many requests run at once, with a bounded queue of
// requests waiting for a slot: the scripts of a [Handler] (share one
// between handlers through Handler.Limiter), and the requests in progress
// of the FastCGI and SCGI clients. Create one with [NewLimiter]; it is
// safe for concurrent use.
type Limiter struct {
	slots   chan struct{} // one token per request running
	maxWait int64         // the queue's bound; negative: none
	waiting atomic.Int64  // requests in the queue, counted if maxWait >= 0
	timeout time.Duration
	timers  sync.Pool // *time.Timer, stopped: a wait costs no new timer
}

// NewLimiter returns a Limiter allowing running requests at once, with at
// most queue more waiting for a slot, each for at most wait. A queue of
// zero refuses a request at once when every slot is taken; a negative
// queue has no bound, and only wait limits the waiting requests. A wait of
// zero or less does not wait. NewLimiter panics if running is less than 1.
func NewLimiter(running, queue int, wait time.Duration) *Limiter {
	if running < 1 {
		panic("cgi: NewLimiter with fewer than 1 running")
	}
	return &Limiter{slots: make(chan struct{}, running), maxWait: int64(queue), timeout: wait}
}

// Acquire waits for a slot. It fails with [ErrNoSlot] when the queue is
// full or the wait exceeds the limiter's timeout, and with ctx's error when
// ctx ends first. On success the caller must call Release once.
func (l *Limiter) Acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	if l.timeout <= 0 {
		return ErrNoSlot
	}
	// The request waits: its observer (metrics, status) is told.
	o := ObserverFrom(ctx)
	o.QueueEnter()
	defer o.QueueLeave()
	if l.maxWait >= 0 {
		if l.waiting.Add(1) > l.maxWait {
			l.waiting.Add(-1)
			return ErrNoSlot
		}
		defer l.waiting.Add(-1)
	}
	t := l.timer()
	defer l.timers.Put(t)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrNoSlot
	case <-ctx.Done():
		return ctx.Err()
	}
}

// timer returns a timer running for the limiter's timeout.
func (l *Limiter) timer() *time.Timer {
	if t, ok := l.timers.Get().(*time.Timer); ok {
		// Stopped before it was put back: since Go 1.23 a stopped or
		// reset timer's channel holds no stale tick.
		t.Reset(l.timeout)
		return t
	}
	return time.NewTimer(l.timeout)
}

// Release frees a slot taken by Acquire.
func (l *Limiter) Release() { <-l.slots }

// Running reports how many slots are taken.
func (l *Limiter) Running() int { return len(l.slots) }

// Cap reports how many slots there are: the running given to NewLimiter.
func (l *Limiter) Cap() int { return cap(l.slots) }
