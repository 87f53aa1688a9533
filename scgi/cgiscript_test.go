package scgi

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testdir"
)

// TestCGIShortBodyFreesSlot is issue 16's short-body denial of service
// through the SCGI front: requests declaring CONTENT_LENGTH=100 and sending
// 5 bytes held their script slot for ever after the timeout killed the
// script, so every later CGI request got 503. Now each gets its 504 at the
// timeout, its connection ends, and the slot is freed.
func TestCGIShortBodyFreesSlot(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	for name, body := range map[string]string{
		"read.sh": `cat >/dev/null; printf 'Content-Type: text/plain\n\nread'`,
		"ok.sh":   `printf 'Content-Type: text/plain\n\nok'`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := &cgi.Handler{MaxConcurrent: 2, Timeout: 500 * time.Millisecond, KillGrace: 100 * time.Millisecond, Resolver: &cgi.Dir{Path: dir, Prefix: "/cgi-bin/"}}
	ts := startServer(t, h)

	raw := request(t, "POST", "/cgi-bin/read.sh", strings.Repeat("x", 100))
	short := raw[:len(raw)-95] // CONTENT_LENGTH says 100; 5 bytes come
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, short)
			out, err := io.ReadAll(c)
			if err != nil || !strings.HasPrefix(string(out), "Status: 504 ") {
				t.Errorf("short body %d: %q, %v; want a 504 and the end of the connection", i, out, err)
			}
		}()
	}
	wg.Wait()
	if out := ts.roundTrip(t, request(t, "GET", "/cgi-bin/ok.sh", "")); !strings.HasPrefix(out, "Status: 200 ") || !strings.HasSuffix(out, "ok") {
		t.Errorf("next request: %q; want 200 ok (the slots must be free)", out)
	}
}
