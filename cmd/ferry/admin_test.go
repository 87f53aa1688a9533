package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/ferrygw/ferry/internal/testdir"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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
	admin := unixClient(sock)
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

// unixClient is an HTTP client whose every request goes to the unix
// socket sock, such as the admin listener's.
func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
}

// TestServeCPUs: ferry.toml's cpus sets how many CPUs run ferry's Go code
// (GOMAXPROCS, which /metrics reports as go_sched_gomaxprocs_threads), and
// a reload changes it.
func TestServeCPUs(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	conf := filepath.Join(dir, "ferry.toml")
	write := func(cpus int) {
		body := fmt.Sprintf("cpus = %d\nadmin = \"unix://%s\"\nroot = %q\n", cpus, sock, dir)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(1)
	p := startFerry(t, "--config", conf)
	admin := unixClient(sock)
	defer admin.CloseIdleConnections()
	gomaxprocs := func() string {
		resp, err := admin.Get("http://admin/metrics")
		if err != nil {
			t.Fatalf("/metrics: %v\n%s", err, p.logs)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "go_sched_gomaxprocs_threads "); ok {
				return v
			}
		}
		t.Fatalf("/metrics has no go_sched_gomaxprocs_threads:\n%s", b)
		return ""
	}
	if got := gomaxprocs(); got != "1" {
		t.Errorf("with cpus = 1: go_sched_gomaxprocs_threads %s; want 1", got)
	}
	write(3)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); len(p.logs.Lines("configuration reloaded")) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", p.logs)
		}
	}
	if l := p.logs.Lines("configuration reloaded"); !strings.Contains(l[0], `"cpus":"1 -> 3"`) {
		t.Errorf("reload line %q; want cpus 1 -> 3 in it", l[0])
	}
	if got := gomaxprocs(); got != "3" {
		t.Errorf("after a reload to cpus = 3: go_sched_gomaxprocs_threads %s; want 3", got)
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v:\n%s", err, p.logs)
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
