// Package queue is the bounded wait for a request slot of the FastCGI and
// SCGI clients, told to the request's [cgi.RequestObserver] so that a
// gateway can count the requests that wait and how long.
package queue

import (
	"context"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/serving"
)

// TakeSlot is [serving.TakeSlot]: it puts a token in slots, waiting at
// most wait for room. When it must wait, the request's observer (in ctx)
// is told as the wait begins and ends.
func TakeSlot(ctx context.Context, slots chan struct{}, wait time.Duration) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	o := cgi.ObserverFrom(ctx)
	o.QueueEnter()
	defer o.QueueLeave()
	return serving.TakeSlot(ctx, slots, wait)
}
