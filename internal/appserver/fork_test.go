package appserver

import (
	"io"
	"net/http"
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
