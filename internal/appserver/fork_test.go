package appserver

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestForkedChildHoldsNoAnswer: an application that forks during a
// request (multiprocessing, os.fork, Perl's fork), the child keeping a
// copy of the worker's connection to ferry, has its answer end when the
// worker is done with it, not when the child exits: the next request on
// the client's kept connection is answered at once. Ferry waited for the
// child, up to the SCGI read timeout (60 s), holding the client's
// connection, and logged the request as aborted.
func TestForkedChildHoldsNoAnswer(t *testing.T) {
	for _, tt := range []struct {
		name  string
		start func(*testing.T, func(*Workers)) *served
	}{{"WSGI", wsgi}, {"PSGI", psgi}} {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.start(t, nil)
			tr := &http.Transport{}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for i, path := range []string{"/fork", "/pid"} {
				start := time.Now()
				resp, err := client.Get(s.url + path)
				if err != nil {
					t.Fatalf("GET %s (request %d on one connection): %v\n%s", path, i+1, err, s.logs)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					t.Fatalf("GET %s: %d %q, %v", path, resp.StatusCode, b, err)
				}
				if took := time.Since(start); took > 5*time.Second {
					t.Errorf("GET %s took %v", path, took)
				}
				if i == 0 {
					child, _ := strconv.Atoi(strings.TrimSpace(waitFile(t, filepath.Join(s.state, "forked"))))
					if child > 0 {
						t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
					}
				}
			}
		})
	}
}

// TestWSGIStopWithMultiprocessingChild: a worker whose application
// started a multiprocessing child (a fork of the worker) exits cleanly,
// and at once, when the pool stops it: the child, which gets SIGTERM with
// the worker's process group, ends on it, and the worker's exit, which
// waits for its multiprocessing children, follows. The child inherited
// the adapter's SIGTERM handler (finish the request in hand, then exit)
// and slept on, so that the worker was killed at the end of the grace.
func TestWSGIStopWithMultiprocessingChild(t *testing.T) {
	s := wsgi(t, func(w *Workers) { w.Pool.Workers = 1; w.Pool.KillGrace = 5 * time.Second })
	code, body, _ := do(t, "GET", s.url+"/multiprocessing", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /multiprocessing: %d %q", code, body)
	}
	worker, _ := strconv.Atoi(body)
	child, _ := strconv.Atoi(strings.TrimSpace(waitFile(t, filepath.Join(s.state, "forked"))))
	t.Cleanup(func() {
		if child > 0 {
			syscall.Kill(child, syscall.SIGKILL)
		}
	})
	// A SIGTERM that reaches the child right after the fork, before
	// Python's own after-fork work, is lost (Python clears the signals
	// pending then): give it 2 s to run the adapter's hook.
	for deadline := time.Now().Add(2 * time.Second); catches(child, syscall.SIGTERM) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if err := s.w.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Stop took %v; want the worker out at once, not at the end of the 5 s grace", took)
	}
	if l := s.logs.Lines("worker stopped", `"pid":`+strconv.Itoa(worker), "exit status 0"); len(l) != 1 {
		t.Errorf("the worker did not exit cleanly:\n%s", lines(s.logs, `"pid":`+strconv.Itoa(worker)))
	}
}

// catches reports whether process pid has a handler for sig, from the
// SigCgt line of /proc/PID/status.
func catches(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(sig-1)) != 0
		}
	}
	return false
}
