package fastcgi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testdir"
)

// cgiScripts writes sh scripts (name, body, ...) into a directory their
// user can run them from, and returns h serving it at /cgi-bin/.
func cgiScripts(t *testing.T, h *cgi.Handler, nameBody ...string) *cgi.Handler {
	t.Helper()
	dir := testdir.Open(t)
	for i := 0; i+1 < len(nameBody); i += 2 {
		if err := os.WriteFile(filepath.Join(dir, nameBody[i]), []byte("#!/bin/sh\n"+nameBody[i+1]), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.Resolver = &cgi.Dir{Path: dir, Prefix: "/cgi-bin/"}
	return h
}

// TestCGIShortBodyFreesSlot is issue 16's short-body denial of service:
// requests declaring CONTENT_LENGTH=100 and sending 5 bytes held their
// script slot for ever after the timeout killed the script (the stdin copy
// waited on a body read that never returned), so every later CGI request
// got 503. Now each gets its 504 at the timeout and the slot is freed.
func TestCGIShortBodyFreesSlot(t *testing.T) {
	leakcheck.Check(t)
	h := &cgi.Handler{MaxConcurrent: 2, Timeout: 500 * time.Millisecond, KillGrace: 100 * time.Millisecond}
	st := newServerTester(t, cgiScripts(t, h,
		"read.sh", `cat >/dev/null; printf 'Content-Type: text/plain\n\nread'`,
		"ok.sh", `printf 'Content-Type: text/plain\n\nok'`))
	for id := uint16(1); id <= 2; id++ {
		st.writeBegin(id, RoleResponder, FlagKeepConn)
		st.writeParams(id, "REQUEST_METHOD", "POST", "REQUEST_URI", "/cgi-bin/read.sh", "SERVER_PROTOCOL", "HTTP/1.1",
			"SERVER_NAME", "example.com", "SERVER_PORT", "80", "CONTENT_LENGTH", "100")
		st.writeRecord(TypeStdin, id, "12345") // and never the other 95
	}
	for id := uint16(1); id <= 2; id++ {
		if resp := st.readResponse(id); !strings.HasPrefix(resp.stdout, "Status: 504 ") {
			t.Errorf("request %d: %q; want a 504", id, resp.stdout)
		}
	}
	st.writeRequest(3, FlagKeepConn, "", get("/cgi-bin/ok.sh")...)
	if resp := st.readResponse(3); !strings.HasPrefix(resp.stdout, "Status: 200 ") || !strings.HasSuffix(resp.stdout, "\r\n\r\nok") {
		t.Errorf("next request: %q; want 200 ok (the slots must be free)", resp.stdout)
	}
}

// TestCGIAbortNeverLooksLikeSuccess: ABORT_REQUEST while the script has
// not answered gave "Status: 200 OK" and an empty body.
func TestCGIAbortNeverLooksLikeSuccess(t *testing.T) {
	leakcheck.Check(t)
	h := &cgi.Handler{KillGrace: 100 * time.Millisecond}
	st := newServerTester(t, cgiScripts(t, h, "slow.sh", `sleep 30`))
	st.writeRequest(1, FlagKeepConn, "", get("/cgi-bin/slow.sh")...)
	time.Sleep(200 * time.Millisecond) // the script runs
	st.writeRecord(TypeAbortRequest, 1, "")
	resp := st.readResponse(1)
	if strings.HasPrefix(resp.stdout, "Status: 200") || !strings.HasPrefix(resp.stdout, "Status: 503 ") {
		t.Errorf("aborted request answered %q; want a 503", resp.stdout)
	}
}

// TestCGIAbortAfterOutput: ABORT_REQUEST once the script has answered ends
// the request with END_REQUEST, as the spec wants, and the connection
// serves on; the script is stopped.
func TestCGIAbortAfterOutput(t *testing.T) {
	leakcheck.Check(t)
	h := &cgi.Handler{KillGrace: 100 * time.Millisecond}
	st := newServerTester(t, cgiScripts(t, h,
		"slow.sh", `printf 'Content-Type: text/plain\n\nfirst\n'; sleep 30`,
		"ok.sh", `printf 'Content-Type: text/plain\n\nok'`))
	st.writeRequest(1, FlagKeepConn, "", get("/cgi-bin/slow.sh")...)
	var out string
	for !strings.Contains(out, "first\n") {
		r := st.readRecordFor(1)
		if r.Type != TypeStdout {
			t.Fatalf("got %s before the script's output", r.Type)
		}
		out += string(r.Content)
	}
	st.writeRecord(TypeAbortRequest, 1, "")
	st.readResponse(1) // fails the test if no END_REQUEST comes
	st.writeRequest(2, FlagKeepConn, "", get("/cgi-bin/ok.sh")...)
	if resp := st.readResponse(2); !strings.HasSuffix(resp.stdout, "\r\n\r\nok") {
		t.Errorf("next request on the connection: %q; want ok", resp.stdout)
	}
}
