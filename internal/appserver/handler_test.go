package appserver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/ferrygw/ferry/spawn"
	"github.com/rs/zerolog"
)

// TestHardTimeoutRace: a handler that gives up as soon as the hard
// timeout ends its context, writing nothing, gets the request a 504 and
// the timeout's log line, every time. The context's error shows once its
// Done closes, before its AfterFuncs start; with many of them on the
// request (as a handler's clients register theirs), the guard's stop of
// its own used to win that race and answer an empty 200 with no kill.
func TestHardTimeoutRace(t *testing.T) {
	leakcheck.Check(t)
	logs := &testlog.Buffer{}
	log := zerolog.New(logs)
	w := &Workers{Pool: &spawn.Pool{}, Timeout: 20 * time.Millisecond, Logger: &log}
	h := w.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		for range 2000 {
			context.AfterFunc(r.Context(), func() {}) // run when the context ends
		}
		<-r.Context().Done()
	}))
	const n = 20
	for i := range n {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/app/x", nil))
		if rec.Code != http.StatusGatewayTimeout {
			t.Fatalf("request %d: %d %q; want 504 past the hard timeout", i, rec.Code, rec.Body)
		}
	}
	// The guard's AfterFunc logs on a goroutine of its own.
	waitFor(t, "a timeout line per request", func() bool {
		return strings.Count(logs.String(), "passed the hard timeout before a worker took it") == n
	})
}
