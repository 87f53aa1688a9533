package cgi

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

func TestLimiterAcquireRelease(t *testing.T) {
	l := NewLimiter(2, 0, time.Second)
	ctx := context.Background()
	for i := range 2 {
		if err := l.Acquire(ctx); err != nil {
			t.Fatalf("Acquire %d: %v", i, err)
		}
	}
	if got := l.Running(); got != 2 {
		t.Errorf("Running() = %d; want 2", got)
	}
	// No queue: a third request is refused at once.
	if err := l.Acquire(ctx); !errors.Is(err, ErrNoSlot) {
		t.Errorf("Acquire with all slots taken and no queue = %v; want ErrNoSlot", err)
	}
	l.Release()
	if got := l.Running(); got != 1 {
		t.Errorf("Running() after Release = %d; want 1", got)
	}
	if err := l.Acquire(ctx); err != nil {
		t.Errorf("Acquire after Release: %v", err)
	}
	l.Release()
	l.Release()
	if got := l.Running(); got != 0 {
		t.Errorf("Running() after releasing all = %d; want 0", got)
	}
}

func TestLimiterQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(1, 1, time.Minute)
		ctx := context.Background()
		if err := l.Acquire(ctx); err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		queued := make(chan error)
		go func() { queued <- l.Acquire(ctx) }()
		synctest.Wait() // the second request now waits in the queue

		start := time.Now()
		if err := l.Acquire(ctx); !errors.Is(err, ErrNoSlot) {
			t.Errorf("Acquire with a full queue = %v; want ErrNoSlot", err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Acquire with a full queue took %v; want an immediate answer", d)
		}
		l.Release()
		if err := <-queued; err != nil {
			t.Errorf("queued Acquire after Release = %v; want nil", err)
		}
		if got := l.Running(); got != 1 {
			t.Errorf("Running() = %d; want 1", got)
		}
		l.Release()
	})
}

func TestLimiterQueueTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const wait = 30 * time.Second
		l := NewLimiter(1, 4, wait)
		ctx := context.Background()
		if err := l.Acquire(ctx); err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		start := time.Now()
		if err := l.Acquire(ctx); !errors.Is(err, ErrNoSlot) {
			t.Errorf("Acquire past the queue timeout = %v; want ErrNoSlot", err)
		}
		if d := time.Since(start); d != wait {
			t.Errorf("Acquire gave up after %v; want %v", d, wait)
		}
		// The timed-out request left the queue: four may wait again, a fifth not.
		done := make(chan error, 4)
		for range 4 {
			go func() { done <- l.Acquire(ctx) }()
		}
		synctest.Wait()
		if err := l.Acquire(ctx); !errors.Is(err, ErrNoSlot) {
			t.Errorf("fifth waiter: Acquire = %v; want ErrNoSlot", err)
		}
		for range 4 {
			l.Release()
			if err := <-done; err != nil {
				t.Errorf("waiter: Acquire = %v; want nil", err)
			}
		}
		l.Release()
	})
}

func TestLimiterContextCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := NewLimiter(1, 1, time.Hour)
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- l.Acquire(ctx) }()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || errors.Is(err, ErrNoSlot) {
			t.Errorf("Acquire with canceled ctx = %v; want context.Canceled", err)
		}
		if got := l.Running(); got != 1 {
			t.Errorf("Running() after a canceled wait = %d; want 1", got)
		}
		// Its queue place is free again.
		go func() { done <- l.Acquire(context.Background()) }()
		synctest.Wait()
		l.Release()
		if err := <-done; err != nil {
			t.Errorf("Acquire after a canceled waiter = %v; want nil", err)
		}
		l.Release()
	})
}

// TestLimiterNoQueueBound: a negative queue bounds only the wait, as the
// FastCGI and SCGI clients use it.
func TestLimiterNoQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const wait = 10 * time.Second
		l := NewLimiter(1, -1, wait)
		ctx := context.Background()
		if err := l.Acquire(ctx); err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		const waiters = 100
		done := make(chan error, waiters)
		for range waiters {
			go func() { done <- l.Acquire(ctx) }()
		}
		synctest.Wait() // every one waits: none is refused for the queue
		select {
		case err := <-done:
			t.Fatalf("a waiter ended early: %v", err)
		default:
		}
		l.Release()
		if err := <-done; err != nil {
			t.Errorf("first waiter after Release: Acquire = %v; want nil", err)
		}
		start := time.Now()
		for range waiters - 1 {
			if err := <-done; !errors.Is(err, ErrNoSlot) {
				t.Errorf("waiter past the wait: Acquire = %v; want ErrNoSlot", err)
			}
		}
		if d := time.Since(start); d != wait {
			t.Errorf("the waiters gave up after %v; want %v", d, wait)
		}
		if got := l.Running(); got != 1 {
			t.Errorf("Running() = %d; want 1", got)
		}
		l.Release()
	})
}

// TestLimiterNoWait: a wait of zero or less refuses at once when every
// slot is taken, whatever the queue.
func TestLimiterNoWait(t *testing.T) {
	for _, wait := range []time.Duration{0, -time.Second} {
		synctest.Test(t, func(t *testing.T) {
			l := NewLimiter(1, -1, wait)
			ctx := context.Background()
			if err := l.Acquire(ctx); err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			start := time.Now()
			if err := l.Acquire(ctx); !errors.Is(err, ErrNoSlot) {
				t.Errorf("wait %v: Acquire with every slot taken = %v; want ErrNoSlot", wait, err)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("wait %v: Acquire took %v; want an immediate answer", wait, d)
			}
			l.Release()
		})
	}
}

func TestLimiterCap(t *testing.T) {
	if got := NewLimiter(3, 0, 0).Cap(); got != 3 {
		t.Errorf("NewLimiter(3, 0, 0).Cap() = %d; want 3", got)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("NewLimiter(0, 0, 0) did not panic")
		}
	}()
	NewLimiter(0, 0, 0)
}

// TestLimiterTimerReuse: a wait's timer goes back to the limiter for the
// next wait, whether it fired or not; the next waits the whole timeout.
func TestLimiterTimerReuse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const wait = 10 * time.Second
		l := NewLimiter(1, -1, wait)
		ctx := context.Background()
		if err := l.Acquire(ctx); err != nil {
			t.Fatal(err)
		}
		// A waiter that gets its slot: its timer stops unfired.
		done := make(chan error)
		go func() { done <- l.Acquire(ctx) }()
		synctest.Wait()
		time.Sleep(wait / 2)
		l.Release()
		if err := <-done; err != nil {
			t.Fatalf("waiter: %v", err)
		}
		for i := range 3 {
			start := time.Now()
			if err := l.Acquire(ctx); !errors.Is(err, ErrNoSlot) {
				t.Fatalf("wait %d: %v; want ErrNoSlot", i, err)
			}
			if d := time.Since(start); d != wait {
				t.Errorf("wait %d gave up after %v; want %v", i, d, wait)
			}
		}
		l.Release()
	})
}
