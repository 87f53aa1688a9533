package main

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/scgi"
)

// TestSystemdSocketActivation starts ferry through systemd-socket-activate,
// which passes the listening socket as descriptor 3 with LISTEN_PID and
// LISTEN_FDS: FastCGI by default (an fcgiwrap.socket replacement), HTTP or
// SCGI for a descriptor named "http" or "scgi".
func TestSystemdSocketActivation(t *testing.T) {
	bins := peerstest.Need(t, "systemd-socket-activate")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "hi.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi %s' \"$SERVER_PORT\"\n")
	start := func(t *testing.T, extra ...string) string {
		t.Helper()
		addr := freeAddr(t)
		args := append([]string{"-l", addr}, extra...)
		args = append(args, "-E", "FERRY_TEST_MAIN=1", self, "serve", "--mount", "/cgi-bin/=cgi:"+dir)
		cmd := exec.Command(bins["systemd-socket-activate"], args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
			}
		})
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close() // the first connection makes it exec ferry; ferry then accepts and drops it
				return addr
			}
			if time.Now().After(deadline) {
				t.Fatalf("systemd-socket-activate never listened on %s", addr)
			}
		}
	}

	t.Run("http", func(t *testing.T) {
		addr := start(t, "--fdname=http")
		_, port, _ := net.SplitHostPort(addr)
		resp, err := http.Get("http://" + addr + "/cgi-bin/hi.sh")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "hi "+port {
			t.Errorf("GET through the activated HTTP socket = %d %q; want 200 %q", resp.StatusCode, b, "hi "+port)
		}
	})
	t.Run("fastcgi", func(t *testing.T) {
		addr := start(t)
		c := &fastcgi.Client{Network: "tcp", Address: addr, MaxConns: 1}
		defer c.CloseIdle()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		resp, err := c.Do(ctx, &fastcgi.Request{Params: []string{
			"REQUEST_METHOD=GET", "REQUEST_URI=/cgi-bin/hi.sh", "SERVER_PROTOCOL=HTTP/1.1", "SERVER_NAME=x", "SERVER_PORT=8443",
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Stdout.Close()
		br := bufio.NewReader(resp.Stdout)
		if _, err := cgi.ReadResponse(br, false, cgi.HeaderLimits{}); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(br)
		if !strings.HasSuffix(string(b), "hi 8443") {
			t.Errorf("FastCGI through the activated socket: %q; want the front's SERVER_PORT 8443", b)
		}
	})
	t.Run("scgi", func(t *testing.T) {
		addr := start(t, "--fdname=scgi")
		h := scgi.NewHandler(&scgi.Client{Network: "tcp", Address: addr}, nil, cgi.Settings{})
		r := httptest.NewRequest("GET", "https://front.example:8443/cgi-bin/hi.sh", nil)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != 200 || w.Body.String() != "hi 8443" {
			t.Errorf("SCGI through the activated socket: %d %q; want 200 and the front's SERVER_PORT 8443", w.Code, w.Body)
		}
	})
}
