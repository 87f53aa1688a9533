package main

import (
	"bytes"
	"context"
	"github.com/ferrygw/ferry/internal/testdir"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestServeAdmin runs "ferry serve --admin unix://..." and reads the admin
// paths over the socket.
func TestServeAdmin(t *testing.T) {
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "ok.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nok'\n")
	sock := filepath.Join(t.TempDir(), "admin.sock")
	p := startFerry(t, "--mount", "/cgi-bin/="+"cgi:"+dir, "--admin", "unix://"+sock+"?mode=0600")
	if code, body := httpGet(t, p.URL+"/cgi-bin/ok.sh"); code != 200 || body != "ok" {
		t.Fatalf("GET ok.sh = %d %q", code, body)
	}
	admin := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	get := func(path string) (int, string) {
		resp, err := admin.Get("http://admin" + path)
		if err != nil {
			t.Fatalf("admin %s: %v\n%s", path, err, p.logs)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 || body != "ok /cgi-bin/ cgi:"+dir+"\n" {
		t.Errorf("/readyz = %d %q", code, body)
	}
	want := `ferry_requests_total{backend="cgi:` + dir + `",class="2xx",mount="/cgi-bin/"} 1`
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, want+"\n") {
		t.Errorf("/metrics = %d without %q:\n%s", code, want, body)
	}
	if code, body := get("/status"); code != 200 || !strings.Contains(body, "<code>/cgi-bin/</code>") {
		t.Errorf("/status = %d:\n%s", code, body)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v:\n%s", err, p.logs)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("the admin socket outlives ferry: %v", err)
	}
}

// TestAdminFlagError checks that a bad --admin is one line naming the flag
// and the two spellings.
func TestAdminFlagError(t *testing.T) {
	for _, arg := range []string{"127.0.0.1:2020", "fastcgi://127.0.0.1:2020", "unix:///tmp/a.sock?mod=0600"} {
		var out, errb bytes.Buffer
		code := run([]string{"serve", "--admin", arg}, &out, &errb)
		if code != 2 || !strings.HasPrefix(errb.String(), "ferry serve: --admin ") || strings.Count(errb.String(), "\n") != 1 {
			t.Errorf("ferry serve --admin %q = exit %d, stderr %q; want exit 2 and one line about --admin", arg, code, errb.String())
		}
	}
}
