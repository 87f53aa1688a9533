package cgi

import (
	"context"
	"github.com/ferrygw/ferry/internal/testdir"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// recorder is a RequestObserver that writes down what it is told.
type recorder struct {
	mu      sync.Mutex
	events  []string
	pid     int
	script  string
	state   *os.ProcessState
	stop    StopCause
	status  int
	failure error
}

func (r *recorder) add(e string) { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }

func (r *recorder) QueueEnter() { r.add("queue") }
func (r *recorder) QueueLeave() { r.add("dequeue") }
func (r *recorder) ScriptStarted(pid int, s Script, spawn time.Duration) {
	r.pid, r.script = pid, s.Filename
	if spawn <= 0 {
		r.add("bad spawn time")
	}
	r.add("started")
}
func (r *recorder) ScriptEnded(st *os.ProcessState, stop StopCause) {
	r.state, r.stop = st, stop
	r.add("ended:" + stop.String())
}
func (r *recorder) Forwarded(s Script) { r.add("forwarded") }
func (r *recorder) Failed(status int, err error) {
	r.status, r.failure = status, err
	r.add("failed")
}

// TestObserver checks what a Handler tells the request's observer: a
// script that answers, one that crashes, one that times out, and a request
// that waits for the one script slot.
func TestObserver(t *testing.T) {
	dir := testdir.Open(t)
	ok := writeScript(t, dir, "ok.sh", `printf 'Content-Type: text/plain\n\nok'`)
	crash := writeScript(t, dir, "crash.sh", `kill -SEGV $$`)
	slow := writeScript(t, dir, "slow.sh", `exec sleep 30`)
	nop := zerolog.Nop()
	h := &Handler{Timeout: 300 * time.Millisecond, KillGrace: 100 * time.Millisecond, MaxConcurrent: 1, Settings: Settings{Logger: &nop}}
	t.Run("answer", func(t *testing.T) {
		rec, code := serveScript(t, h, ok, context.Background())
		if code != 200 || !equal(rec.events, "started", "ended:none") || rec.pid == 0 || rec.script != ok || !rec.state.Success() {
			t.Errorf("ok.sh: %d, events %q, pid %d, script %q, state %v", code, rec.events, rec.pid, rec.script, rec.state)
		}
	})
	t.Run("crash", func(t *testing.T) {
		rec, code := serveScript(t, h, crash, context.Background())
		ws, _ := rec.state.Sys().(syscall.WaitStatus)
		if code != 502 || !equal(rec.events, "started", "failed", "ended:none") || rec.status != 502 || ws.Signal() != syscall.SIGSEGV {
			t.Errorf("crash.sh: %d, events %q, status %d, state %v", code, rec.events, rec.status, rec.state)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		rec, code := serveScript(t, h, slow, context.Background())
		if code != 504 || !equal(rec.events, "started", "failed", "ended:timeout") || rec.status != 504 {
			t.Errorf("slow.sh: %d, events %q, status %d", code, rec.events, rec.status)
		}
	})
	t.Run("client gone", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		rec, _ := serveScript(t, h, slow, ctx)
		if !equal(rec.events, "started", "ended:client_gone") {
			t.Errorf("slow.sh, client gone: events %q", rec.events)
		}
	})
	t.Run("queue", func(t *testing.T) {
		l := NewLimiter(1, 1, time.Second)
		if err := l.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(100*time.Millisecond, l.Release)
		hq := h.Clone()
		hq.Limiter = l
		rec, code := serveScript(t, hq, ok, context.Background())
		if code != 200 || !equal(rec.events, "queue", "dequeue", "started", "ended:none") {
			t.Errorf("ok.sh after a wait: %d, events %q", code, rec.events)
		}
	})
}

// serveScript runs script through a clone of h with a recorder as the
// request's observer.
func serveScript(t *testing.T, h *Handler, script string, ctx context.Context) (*recorder, int) {
	t.Helper()
	rec := &recorder{}
	h = h.Clone()
	h.Path = script
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil).WithContext(WithObserver(ctx, rec)))
	return rec, w.Code
}

func equal(got []string, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// TestNoObserver checks that a request without an observer gets one that
// does nothing.
func TestNoObserver(t *testing.T) {
	o := ObserverFrom(context.Background())
	o.QueueEnter()
	o.Failed(http.StatusBadGateway, nil)
	if _, ok := o.(noObserver); !ok {
		t.Errorf("ObserverFrom(empty) = %T; want noObserver", o)
	}
}

// loggingRecorder is a recorder that also gives the request's logger.
type loggingRecorder struct {
	recorder
	log *zerolog.Logger
}

func (r *loggingRecorder) Logger() *zerolog.Logger { return r.log }

// TestLoggerFrom: a request's logger is the one zerolog's WithContext put
// in its context, else its observer's if that is a RequestLogger, else
// the default.
func TestLoggerFrom(t *testing.T) {
	var ctxOut, obsOut, defOut strings.Builder
	ctxLog, obsLog, def := zerolog.New(&ctxOut), zerolog.New(&obsOut), zerolog.New(&defOut)
	bg := context.Background()
	for _, tt := range []struct {
		name string
		ctx  context.Context
		want *strings.Builder // where a line logged goes
	}{
		{"none", bg, &defOut},
		{"an observer that gives none", WithObserver(bg, &recorder{}), &defOut},
		{"the observer's", WithObserver(bg, &loggingRecorder{log: &obsLog}), &obsOut},
		{"an observer's nil", WithObserver(bg, &loggingRecorder{}), &defOut},
		{"the context's", ctxLog.WithContext(bg), &ctxOut},
		{"the context's before the observer's", WithObserver(ctxLog.WithContext(bg), &loggingRecorder{log: &obsLog}), &ctxOut},
	} {
		ctxOut.Reset()
		obsOut.Reset()
		defOut.Reset()
		LoggerFrom(tt.ctx, &def).Info().Msg(tt.name)
		for _, out := range []*strings.Builder{&ctxOut, &obsOut, &defOut} {
			if got := strings.Contains(out.String(), tt.name); got != (out == tt.want) {
				t.Errorf("%s: the line went to the wrong logger (context %q, observer %q, default %q)", tt.name, ctxOut.String(), obsOut.String(), defOut.String())
				break
			}
		}
	}
}
