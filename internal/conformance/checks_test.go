package conformance

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

func TestTargetPrefix(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", "/cgi-bin/"},
		{"/cgi-bin/", "/cgi-bin/"},
		{"/scripts", "/scripts/"},
		{"app/cgi/", "/app/cgi/"},
		{"/", "/"},
	} {
		if got := (Target{Prefix: tt.in}).prefix(); got != tt.want {
			t.Errorf("Target{Prefix: %q}.prefix() = %q; want %q", tt.in, got, tt.want)
		}
	}
}

// TestProcState follows a child through running, zombie (killed, not waited
// for) and gone (reaped), which is what the disconnect check tells apart.
func TestProcState(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	pid := cmd.Process.Pid
	if got := procState(pid); got != procRunning {
		t.Errorf("procState(running child) = %v; want %v", got, procRunning)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if !poll(t.Context(), reapWait, func() bool { return procState(pid) == procZombie }) {
		t.Errorf("procState(killed child) = %v; want %v", procState(pid), procZombie)
	}
	_ = cmd.Wait() // "signal: killed", as intended
	if got := procState(pid); got != procGone {
		t.Errorf("procState(reaped child) = %v; want %v", got, procGone)
	}
}

// rawServer answers HTTP/1.1 requests on a loopback listener with answer, which
// writes the whole response for a method and path by hand.
func rawServer(t *testing.T, answer func(w io.Writer, method, path string)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return // closed by the cleanup
			}
			wg.Go(func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					answer(conn, req.Method, req.URL.Path)
				}
			})
		}
	})
	return "http://" + l.Addr().String()
}

// TestCheckHeadSeesBody checks that the head check notices a body sent after a
// HEAD response, which net/http's client would hide.
func TestCheckHeadSeesBody(t *testing.T) {
	const headers = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Conformance-Script: env.sh\r\nContent-Length: 6\r\n\r\n"
	for _, tt := range []struct {
		name    string
		head    string // the answer to HEAD
		wantErr string // "" means the check passes
	}{
		{name: "no body", head: headers},
		{name: "body", head: headers + "A=1\n\n", wantErr: "did the HEAD response carry a body"},
		{name: "wrong header", head: strings.Replace(headers, "env.sh", "other", 1), wantErr: `X-Conformance-Script = "other"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base := rawServer(t, func(w io.Writer, method, path string) {
				switch {
				case method == http.MethodHead:
					_, _ = io.WriteString(w, tt.head) // a failed write shows in the check
				case path == "/cgi-bin/status.sh":
					_, _ = io.WriteString(w, "HTTP/1.1 418 I'm a teapot\r\nContent-Length: 7\r\n\r\nteapot\n")
				default:
					_, _ = io.WriteString(w, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
				}
			})
			s, err := newSession(Target{BaseURL: base})
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			err = checkHead(t.Context(), s)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("checkHead: %v; want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("checkHead: %v; want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewSessionRejectsBadBaseURL(t *testing.T) {
	for _, base := range []string{"", "127.0.0.1:80", "ftp://h/", "http://h:1/sub", "http://h:1/?q"} {
		if _, err := newSession(Target{BaseURL: base}); err == nil {
			t.Errorf("newSession(BaseURL %q) succeeded; want an error", base)
		}
	}
	for _, base := range []string{"http://127.0.0.1:8080", "http://127.0.0.1:8080/", "https://h"} {
		s, err := newSession(Target{BaseURL: base})
		if err != nil {
			t.Errorf("newSession(BaseURL %q): %v", base, err)
			continue
		}
		s.close()
	}
}
