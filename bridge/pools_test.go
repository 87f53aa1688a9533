package bridge

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/ferrygw/ferry/spawn"
	"github.com/rs/zerolog"
)

// brokenWorker is a fastcgi+exec: program that cannot start: it says why
// on stderr and exits 3, as php-cgi does with a bad php.ini.
const brokenWorker = "#!/bin/sh\necho 'broken-worker: cannot load its configuration' >&2\nexit 3\n"

// TestSpawnPoolThatExitsFailsStart: a fastcgi+exec: pool whose workers
// exit at once is a start error naming the program, its exit status and
// its stderr, and leaves no worker running. Before, ferry started and
// served, and every request waited the 60 s read timeout for 504.
func TestSpawnPoolThatExitsFailsStart(t *testing.T) {
	leakcheck.Check(t)
	broken := filepath.Join(testdir.Open(t), "x.sh")
	writeExec(t, broken, brokenWorker)
	logs := &testlog.Buffer{}
	cfg := mustConfig(t, "http://127.0.0.1:0", "/=fastcgi+exec:"+broken+"?workers=2")
	log := zerolog.New(logs)
	cfg.Logger = &log
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err = s.Run(ctx, func([]net.Listener) {
		t.Error("Run served")
		cancel()
	})
	if !errors.Is(err, spawn.ErrNotStarted) {
		t.Fatalf("Run = %v; want an error wrapping spawn.ErrNotStarted", err)
	}
	for _, want := range []string{broken, "exit status 3", "broken-worker: cannot load its configuration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run = %q; want it to say %q", err, want)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run failed after %v; want at once", d)
	}
	if kids := leakcheck.Children(os.Getpid()); len(kids) != 0 {
		t.Errorf("children left after the failed start: %v", kids)
	}
}

// TestReloadRefusesPoolThatExits: a reload that replaces a working
// fastcgi+exec: pool with one whose workers exit at once is refused with
// the program's exit status, and the old pool keeps serving. Before, the
// reload went through and the site answered 504 after 60 s.
func TestReloadRefusesPoolThatExits(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "ok.sh"), okScript)
	broken := filepath.Join(dir, "x.sh")
	writeExec(t, broken, brokenWorker)
	logs := &testlog.Buffer{}
	cfg := reloadConfig(t, logs, []string{"http://127.0.0.1:0"}, dir, "2")
	s, addr, stop := startReloadable(t, cfg, logs)
	defer stop()
	base := "http://" + addr
	if got := getBody(t, base+matrixPrefix+"/status"); got != "created" {
		t.Fatalf("before the reload: %q", got)
	}
	old := runningPool(s)
	pids := old.PIDs()

	next := cfg
	next.Mounts = slices.Clone(cfg.Mounts)
	next.Mounts[1] = mustMount(t, matrixPrefix+"=fastcgi+exec:"+broken+"?workers=2")
	err := s.Reload(next)
	if !errors.Is(err, spawn.ErrNotStarted) || !strings.Contains(err.Error(), broken) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Reload to a pool that exits = %v; want ErrNotStarted naming %s and its exit status", err, broken)
	}
	if runningPool(s) != old {
		t.Errorf("the refused reload replaced the pool")
	}
	if got := getBody(t, base+matrixPrefix+"/status"); got != "created" {
		t.Errorf("after the refused reload: %q; want the old pool's answer", got)
	}
	if now := old.PIDs(); !slices.Equal(now, pids) {
		t.Errorf("the old pool's workers %v -> %v; want them kept", pids, now)
	}
	if n := len(logs.Lines("configuration reloaded")); n != 0 {
		t.Errorf("%d reloads logged; want none", n)
	}
	stop()
	if kids := leakcheck.Children(os.Getpid()); len(kids) != 0 {
		t.Errorf("children left after stop: %v", kids)
	}
}

// TestSpawnStartTimeoutOption: start_timeout bounds the wait for a
// fastcgi+exec: pool's first worker: one that never takes a connection
// fails the start after it, the error saying so. Before, the bound was
// 10 s for every program, and the option an unknown one.
func TestSpawnStartTimeoutOption(t *testing.T) {
	leakcheck.Check(t)
	silent := filepath.Join(testdir.Open(t), "silent.sh")
	writeExec(t, silent, "#!/bin/sh\nexec sleep 60\n")
	cfg := mustConfig(t, "http://127.0.0.1:0", "/=fastcgi+exec:"+silent+"?workers=2&start_timeout=300ms")
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wantStartTimedOut(t, s)
}

// wantStartTimedOut runs s, whose workers never serve and whose
// start_timeout is 300ms, and fails t unless Run fails with
// spawn.ErrNotStarted soon after, leaving no child process.
func wantStartTimedOut(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	err := s.Run(ctx, func([]net.Listener) {
		t.Error("Run served")
		cancel()
	})
	if !errors.Is(err, spawn.ErrNotStarted) || !strings.Contains(err.Error(), "did not serve within 300ms") {
		t.Fatalf("Run = %v; want ErrNotStarted after 300ms", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run failed after %v; want after start_timeout", d)
	}
	if kids := leakcheck.Children(os.Getpid()); len(kids) != 0 {
		t.Errorf("children left after the failed start: %v", kids)
	}
}

// heldWorker is a fastcgi+exec: program that takes a connection, reads
// the request and holds the connection without a word, even once the
// client has shut its side: it says nothing about itself, but serves.
const heldWorker = `open(my $listener, "<&=", 0) or die "descriptor 0: $!";
accept(my $conn, $listener) or die "accept: $!";
sysread($conn, my $request, 4096);
sleep 60;
`

// TestSpawnPoolOfSilentProgramStarts: a fastcgi+exec: program that takes
// the start probe's connection and reads it, but neither answers
// FCGI_GET_VALUES nor closes the connection, starts at once. Before, the
// start failed after start_timeout: "did not serve within".
func TestSpawnPoolOfSilentProgramStarts(t *testing.T) {
	leakcheck.Check(t)
	bins := peerstest.Need(t, "perl")
	held := filepath.Join(testdir.Open(t), "held.pl")
	writeExec(t, held, "#!"+bins["perl"]+"\n"+heldWorker)
	cfg := mustConfig(t, "http://127.0.0.1:0", "/=fastcgi+exec:"+held+"?workers=1&start_timeout=5s")
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	var served time.Duration
	err = s.Run(ctx, func([]net.Listener) {
		served = time.Since(start)
		cancel()
	})
	if err != nil {
		t.Fatalf("Run = %v; want it to serve", err)
	}
	if served == 0 || served > 3*time.Second {
		t.Errorf("Run served after %v; want at once", served)
	}
}

// TestPersistPHPStartTimeoutOption: start_timeout bounds the wait for the
// first php-cgi worker of a cgi:DIR?persist=php mount, as it does a
// fastcgi+exec: pool's: a php-cgi that never takes a connection fails the
// start after it, the error saying so; a real one serves within it.
// Before, cgi: mounts refused the option as unknown, and the bound was
// 10 s.
func TestPersistPHPStartTimeoutOption(t *testing.T) {
	leakcheck.Check(t)
	dir := testdir.Open(t)
	bin, site := filepath.Join(dir, "bin"), filepath.Join(dir, "site")
	for _, d := range []string{bin, site} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeExec(t, filepath.Join(bin, "php-cgi"), "#!/bin/sh\nexec sleep 60\n")
	writeExec(t, filepath.Join(site, "hello.php"), `<?php echo "hello";`) // a cgi: directory runs executables only
	mount := "/=cgi:" + site + "?persist=php&workers=2&start_timeout=300ms"

	realPATH := os.Getenv("PATH")
	t.Setenv("PATH", bin+string(os.PathListSeparator)+realPATH) // persist=php runs the php-cgi of PATH
	s, err := New(mustConfig(t, "http://127.0.0.1:0", mount))
	if err != nil {
		t.Fatal(err)
	}
	wantStartTimedOut(t, s)

	// A real php-cgi starts within a start_timeout it can meet on a
	// loaded machine (300 ms was missed under the whole suite).
	os.Setenv("PATH", realPATH) // t.Setenv restores it at the end
	peerstest.Need(t, "php-cgi")
	addr, _ := startFerry(t, Config{Mounts: []Mount{mustMount(t, strings.Replace(mount, "start_timeout=300ms", "start_timeout=30s", 1))}})
	if code, body := getStatus(t, "http://"+addr+"/hello.php"); code != 200 || body != "hello" {
		t.Errorf("GET /hello.php with a real php-cgi: %d %q; want 200 hello", code, body)
	}
}
