package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
)

// slowFastCGIApp serves, over FastCGI on a loopback port, an application
// that answers "fastcgi done" after d; arrived counts the requests it has
// been sent.
func slowFastCGIApp(t *testing.T, d time.Duration, arrived *atomic.Int32) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fastcgi.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		time.Sleep(d)
		io.WriteString(w, "fastcgi done\n")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// TestShutdownUnderLoad is point 8 of issue 16: SIGTERM with 50 CGI and 50
// FastCGI requests in flight lets every one finish within
// --shutdown-timeout, and leaves no process behind.
func TestShutdownUnderLoad(t *testing.T) {
	leakcheck.Check(t)
	dir, state := testdir.Open(t), testdir.Open(t)
	writeExec(t, filepath.Join(dir, "slow.sh"), `#!/bin/sh
echo $$ > "$STATE/$QUERY_STRING.pid"
sleep 1
printf 'Content-Type: text/plain\n\ncgi done\n'`)
	var arrived atomic.Int32
	app := slowFastCGIApp(t, time.Second, &arrived)
	p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir, "--mount", "/app/=fastcgi://"+app+"?max_conns=64",
		"--env", "STATE="+state, "--cgi-max-concurrent", "64", "--shutdown-timeout", "20s", "--access-log=false")
	defer func() {
		if t.Failed() {
			t.Logf("ferry's log:\n%s", p.logs)
		}
	}()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 200}}
	defer client.CloseIdleConnections()

	type result struct {
		path, body string
		status     int
		err        error
	}
	results := make(chan result, 100)
	var wg sync.WaitGroup
	for i := range 50 {
		for _, path := range []string{"/cgi-bin/slow.sh?" + strconv.Itoa(i), "/app/x"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Get(p.URL + path)
				if err != nil {
					results <- result{path: path, err: err}
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				results <- result{path, string(b), resp.StatusCode, err}
			}()
		}
	}
	// Every CGI script runs; every FastCGI request has reached the
	// application.
	var pids []int
	for i := range 50 {
		pids = append(pids, waitFile(t, filepath.Join(state, strconv.Itoa(i)+".pid")))
	}
	for deadline := time.Now().Add(10 * time.Second); arrived.Load() < 50; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d FastCGI requests reached the application in 10s; want 50", arrived.Load())
		}
	}
	start := time.Now()
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v:\n%s", err, p.logs)
	}
	took := time.Since(start)
	wg.Wait()
	close(results)
	n := 0
	for r := range results {
		n++
		want := "cgi done\n"
		if strings.HasPrefix(r.path, "/app/") {
			want = "fastcgi done\n"
		}
		if r.err != nil || r.status != 200 || r.body != want {
			t.Errorf("%s: %d %q %v; want 200 %q", r.path, r.status, r.body, r.err, want)
		}
	}
	if n != 100 {
		t.Errorf("%d results; want 100", n)
	}
	if took > 20*time.Second {
		t.Errorf("the drain took %v; want it within --shutdown-timeout", took)
	}
	for _, pid := range pids {
		if leakcheck.Alive(pid) {
			t.Errorf("script %d outlived ferry", pid)
		}
	}
	t.Logf("100 requests drained in %v", took)
}

// TestSecondSignalStopsAtOnce: the first SIGTERM starts the drain; a
// second one ends it at once, cutting off the requests in flight and
// stopping their scripts, instead of waiting --shutdown-timeout.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	leakcheck.Check(t)
	dir, state := testdir.Open(t), testdir.Open(t)
	writeExec(t, filepath.Join(dir, "forever.sh"), `#!/bin/sh
echo $$ > "$STATE/$QUERY_STRING.pid"
printf 'Content-Type: text/plain\n\nstarted\n'
sleep 300
echo finished`)
	p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir, "--env", "STATE="+state,
		"--shutdown-timeout", "5m", "--cgi-kill-grace", "200ms")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	bodies := make([]string, 5)
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/cgi-bin/forever.sh?"+strconv.Itoa(i), nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bodies[i] = string(b)
		}()
	}
	var pids []int
	for i := range 5 {
		pids = append(pids, waitFile(t, filepath.Join(state, strconv.Itoa(i)+".pid")))
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitLog(t, p, "shutting down")
	start := time.Now()
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("ferry exited with %v", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("ferry took %v to exit after the second SIGTERM; want at once", took)
	}
	wg.Wait()
	for i, b := range bodies {
		if strings.Contains(b, "finished") {
			t.Errorf("request %d finished: %q", i, b)
		}
	}
	for _, pid := range pids {
		if leakcheck.Alive(pid) {
			t.Errorf("script %d outlived ferry", pid)
		}
	}
	if !strings.Contains(p.logs.String(), "stopping now") {
		t.Errorf("no log line for the second signal:\n%s", p.logs)
	}
	// The drain did not time out (--shutdown-timeout 5m): the log must
	// not say it did.
	if strings.Contains(p.logs.String(), "drain timed out") || !strings.Contains(p.logs.String(), "drain cut short") {
		t.Errorf("the log says the drain timed out, or not that it was cut short:\n%s", p.logs)
	}
	http.DefaultClient.CloseIdleConnections()
}

// TestChildrenDieWithFerry is point 3 of issue 16: however ferry ends
// (SIGTERM or SIGINT, which drain; SIGQUIT, a panic or SIGKILL, which
// stop nothing), neither a CGI script it runs nor a FastCGI worker it
// spawned is left running: a drain stops them, and otherwise their
// parent-death signal kills them.
func TestChildrenDieWithFerry(t *testing.T) {
	peerstest.Need(t, "php-cgi")
	php, _ := peers.Lookup("php-cgi")
	for _, tt := range []struct {
		way  string
		sig  syscall.Signal // 0: a panic
		exit int
	}{{"SIGTERM", syscall.SIGTERM, 0}, {"SIGINT", syscall.SIGINT, 0}, {"SIGQUIT", syscall.SIGQUIT, 2}, {"panic", 0, 2}, {"SIGKILL", syscall.SIGKILL, -1}} {
		t.Run(tt.way, func(t *testing.T) {
			dir, state := testdir.Open(t), testdir.Open(t)
			writeExec(t, filepath.Join(dir, "long.sh"), `#!/bin/sh
echo $$ > "$STATE/pid"
printf 'Content-Type: text/plain\n\nstarted\n'
exec sleep 300`)
			panicFile := filepath.Join(state, "panic")
			t.Setenv("FERRY_TEST_PANIC_FILE", panicFile)
			p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir, "--mount", "/php/=fastcgi+exec:"+php+"?workers=2",
				"--env", "STATE="+state, "--shutdown-timeout", "1s", "--cgi-kill-grace", "200ms")
			answer := getInBackground(p.URL + "/cgi-bin/long.sh")
			script := waitFile(t, filepath.Join(state, "pid"))
			var children []int
			for deadline := time.Now().Add(10 * time.Second); len(children) < 3; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("ferry's children: %v; want the script and 2 workers", children)
				}
				children = leakcheck.Children(p.cmd.Process.Pid)
			}
			t.Cleanup(func() {
				if t.Failed() { // none left behind by a failure either
					for _, pid := range children {
						syscall.Kill(pid, syscall.SIGKILL)
					}
				}
			})
			if !slices.Contains(children, script) {
				t.Fatalf("ferry's children %v do not include the script %d", children, script)
			}

			if tt.sig != 0 {
				p.cmd.Process.Signal(tt.sig)
			} else if err := os.WriteFile(panicFile, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			var err error
			select {
			case err = <-p.done:
				p.done <- err
			case <-time.After(30 * time.Second):
				t.Fatalf("ferry did not end within 30s of %s", tt.way)
			}
			if code := p.cmd.ProcessState.ExitCode(); code != tt.exit {
				t.Errorf("ferry ended with %v; want exit code %d", err, tt.exit)
			}
			for _, pid := range children {
				waitDead(t, pid, 5*time.Second)
			}
			<-answer
			http.DefaultClient.CloseIdleConnections()
		})
	}
}
