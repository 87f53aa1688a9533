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
	if err := l.Acquire(ctx); !errors.Is(err, ErrOverloaded) {
		t.Errorf("Acquire with all slots taken and no queue = %v; want ErrOverloaded", err)
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
		if err := l.Acquire(ctx); !errors.Is(err, ErrOverloaded) {
			t.Errorf("Acquire with a full queue = %v; want ErrOverloaded", err)
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
		if err := l.Acquire(ctx); !errors.Is(err, ErrOverloaded) {
			t.Errorf("Acquire past the queue timeout = %v; want ErrOverloaded", err)
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
		if err := l.Acquire(ctx); !errors.Is(err, ErrOverloaded) {
			t.Errorf("fifth waiter: Acquire = %v; want ErrOverloaded", err)
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
		if err := <-done; !errors.Is(err, context.Canceled) || errors.Is(err, ErrOverloaded) {
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
