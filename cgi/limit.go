package cgi

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// ErrOverloaded is returned by [Limiter.Acquire] when the wait queue is full
// or the wait timed out: a gateway answers 503 Service Unavailable.
var ErrOverloaded = errors.New("cgi: too many requests waiting for a script slot")

// Limiter bounds how many scripts run at once, with a bounded queue of
// requests waiting for a slot. Create one with [NewLimiter].
type Limiter struct {
	slots   chan struct{}
	maxWait int64
	waiting atomic.Int64
	timeout time.Duration
}

// NewLimiter returns a Limiter allowing running scripts at once, with at most
// queue requests waiting, each for at most wait.
func NewLimiter(running, queue int, wait time.Duration) *Limiter {
	return &Limiter{slots: make(chan struct{}, running), maxWait: int64(queue), timeout: wait}
}

// Acquire waits for a slot. It fails with [ErrOverloaded] when the queue is
// full or the wait exceeds the limiter's timeout, and with ctx's error when
// ctx ends first. On success the caller must call Release once.
func (l *Limiter) Acquire(ctx context.Context) error {
	select {
	case l.slots <- struct{}{}:
		return nil
	default:
	}
	if l.waiting.Add(1) > l.maxWait {
		l.waiting.Add(-1)
		return ErrOverloaded
	}
	defer l.waiting.Add(-1)
	t := time.NewTimer(l.timeout)
	defer t.Stop()
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-t.C:
		return ErrOverloaded
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Release frees a slot taken by Acquire.
func (l *Limiter) Release() { <-l.slots }

// Running reports how many slots are taken.
func (l *Limiter) Running() int { return len(l.slots) }
