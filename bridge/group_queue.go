package bridge

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/cgi"
)

// groupQueue holds the requests that found every backend up at its
// max_conns, first come first served, until a backend ends a request: the
// group's queue, in front of the backends' own, so that a request waits
// for whichever backend frees a slot first rather than behind one of them.
// The backends' own queues still hold the requests a sticky key sends to a
// busy backend.
type groupQueue struct {
	timeout time.Duration // the longest wait (queue_timeout)
	waiting atomic.Int64  // len(waiters): what release reads without the lock
	mu      sync.Mutex    // guards waiters
	waiters []chan struct{}
}

// errGroupFull is the failure of a request that waited in the group's
// queue for queue_timeout.
var errGroupFull = &cgi.StatusError{Status: http.StatusServiceUnavailable,
	Err: errors.New("bridge: every backend of the group stayed at its max_conns for the queue timeout")}

// wake lets the request first in the queue try again: a backend ended a
// request.
func (q *groupQueue) wake() {
	q.mu.Lock()
	if len(q.waiters) > 0 {
		close(q.waiters[0])
		q.waiters = q.waiters[1:]
		q.waiting.Add(-1)
	}
	q.mu.Unlock()
}

// wait queues a request for a backend of g with room, none of tried, for
// at most the queue's timeout. It returns pick's backend, nil when none is
// left, or errGroupFull, or ctx's error. A request that finds others
// waiting queues behind them; one woken and beaten to the slot keeps its
// place at the front.
func (g *group) wait(ctx context.Context, tried []*member, key string) (*member, error) {
	q := &g.queue
	o := cgi.ObserverFrom(ctx)
	o.QueueEnter()
	defer o.QueueLeave()
	t := time.NewTimer(q.timeout)
	defer t.Stop()
	woken := false
	for {
		ready := make(chan struct{})
		q.mu.Lock()
		if woken || len(q.waiters) == 0 {
			// Under the lock, so that no backend ends a request between
			// this look and the request's place in the queue unseen.
			if m, full := g.pick(tried, key, time.Now()); !full {
				q.mu.Unlock()
				return m, nil
			}
		}
		if woken {
			q.waiters = slices.Insert(q.waiters, 0, ready)
		} else {
			q.waiters = append(q.waiters, ready)
		}
		q.waiting.Add(1)
		q.mu.Unlock()
		var err error
		select {
		case <-ready:
			woken = true
			continue
		case <-t.C:
			err = errGroupFull
		case <-ctx.Done():
			err = ctx.Err()
		}
		q.mu.Lock()
		i := slices.Index(q.waiters, ready)
		if i >= 0 {
			q.waiters = slices.Delete(q.waiters, i, i+1)
			q.waiting.Add(-1)
		}
		q.mu.Unlock()
		if i < 0 {
			q.wake() // woken as it gave up: the next one takes the slot
		}
		return nil, err
	}
}
