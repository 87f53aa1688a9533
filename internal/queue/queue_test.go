package queue

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/serving"
)

// counter is a cgi.RequestObserver that counts queue entries and exits.
type counter struct{ enter, leave int }

func (c *counter) QueueEnter()                                  { c.enter++ }
func (c *counter) QueueLeave()                                  { c.leave++ }
func (c *counter) ScriptStarted(int, cgi.Script, time.Duration) {}
func (c *counter) ScriptEnded(*os.ProcessState, cgi.StopCause)  {}
func (c *counter) Forwarded(cgi.Script)                         {}
func (c *counter) Failed(int, error)                            {}

func TestTakeSlot(t *testing.T) {
	slots := make(chan struct{}, 1)
	c := &counter{}
	ctx := cgi.WithObserver(context.Background(), c)
	if err := TakeSlot(ctx, slots, time.Second); err != nil || c.enter != 0 {
		t.Fatalf("a free slot: %v, %d waits; want nil, none", err, c.enter)
	}
	if err := TakeSlot(ctx, slots, 50*time.Millisecond); !errors.Is(err, serving.ErrQueueTimeout) || c.enter != 1 || c.leave != 1 {
		t.Errorf("no slot: %v, entered %d, left %d; want ErrQueueTimeout, 1, 1", err, c.enter, c.leave)
	}
	time.AfterFunc(50*time.Millisecond, func() { <-slots })
	if err := TakeSlot(ctx, slots, time.Second); err != nil || c.enter != 2 || c.leave != 2 {
		t.Errorf("a slot freed: %v, entered %d, left %d; want nil, 2, 2", err, c.enter, c.leave)
	}
}
