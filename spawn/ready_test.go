package spawn

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/rs/zerolog"
)

// getValuesProbe is a Probe for FastCGI workers: their answer to
// FCGI_GET_VALUES.
func getValuesProbe(ctx context.Context, network, address string) error {
	_, err := (&fastcgi.Client{Network: network, Address: address}).GetValues(ctx, "FCGI_MAX_CONNS")
	return err
}

// acceptProbe is a Probe that waits, until ctx ends, for a worker to
// accept its connection: no worker of these tests writes to it.
func acceptProbe(ctx context.Context, network, address string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_, err = c.Read(make([]byte, 1))
	return err
}

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "worker.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPoolProbeWorkerExits: with a Probe, a pool whose first worker exits
// before it serves fails to start with ErrNotStarted, naming the program,
// its exit status and the end of its stderr, and leaves no worker nor
// socket. Before, Start succeeded and the pool restarted the workers
// forever while clients waited.
func TestPoolProbeWorkerExits(t *testing.T) {
	leakcheck.Check(t)
	tmp := t.TempDir()
	script := writeScript(t, tmp, "echo line-1 >&2\necho 'broken: bad ini' >&2\nexit 3\n")
	sockDir := t.TempDir()
	p := &Pool{Path: script, Workers: 3, TempDir: sockDir, Probe: acceptProbe, RestartBackoff: time.Millisecond}
	start := time.Now()
	err := p.Start(context.Background())
	if !errors.Is(err, ErrNotStarted) {
		p.Stop(context.Background())
		t.Fatalf("Start = %v; want ErrNotStarted", err)
	}
	for _, want := range []string{script, "exit status 3", `line-1\nbroken: bad ini`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start = %q; want it to say %q", err, want)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Start failed after %v; want at once", d)
	}
	if kids := leakcheck.Children(os.Getpid()); len(kids) != 0 {
		t.Errorf("children after the failed Start: %v", kids)
	}
	if ents, _ := os.ReadDir(sockDir); len(ents) != 0 {
		t.Errorf("TempDir after the failed Start holds %v; want nothing", ents)
	}
	if err := p.Start(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("Start again = %v; want ErrStopped", err)
	}
}

// TestFailedStartLogsNoRestart: the first worker exiting before it
// serves fails the start, and the log says it exited but not that it is
// being restarted. Before, "spawn: restarting worker" came just before the
// pool stopped, and a reader thought ferry would try again.
func TestFailedStartLogsNoRestart(t *testing.T) {
	leakcheck.Check(t)
	script := writeScript(t, t.TempDir(), "echo 'broken: bad ini' >&2\nexit 3\n")
	logs := &testlog.Buffer{}
	logger := zerolog.New(logs)
	for i := range 5 { // the restart line raced the stop: try it a few times
		p := &Pool{Path: script, Workers: 2, Probe: acceptProbe, Logger: &logger, RestartBackoff: time.Millisecond}
		if err := p.Start(context.Background()); !errors.Is(err, ErrNotStarted) {
			p.Stop(context.Background())
			t.Fatalf("Start #%d = %v; want ErrNotStarted", i+1, err)
		}
	}
	if n := len(logs.Lines("spawn: worker exited")); n != 5 {
		t.Errorf("%d lines say the worker exited; want 5:\n%s", n, logs)
	}
	if n := len(logs.Lines("spawn: worker stopped")); n != 0 {
		t.Errorf("%d lines say a worker that exited on its own was stopped; want none:\n%s", n, logs)
	}
	if lines := logs.Lines("restarting"); len(lines) != 0 {
		t.Errorf("a failed start logged a restart:\n%s", strings.Join(lines, "\n"))
	}
}

// TestPoolProbeTimeout: a first worker that lives but never accepts fails
// the start after StartTimeout, and is stopped.
func TestPoolProbeTimeout(t *testing.T) {
	leakcheck.Check(t)
	script := writeScript(t, t.TempDir(), "exec sleep 60\n")
	p := &Pool{Path: script, Workers: 2, Probe: acceptProbe, StartTimeout: 300 * time.Millisecond}
	err := p.Start(context.Background())
	if !errors.Is(err, ErrNotStarted) || !strings.Contains(err.Error(), "did not serve within 300ms") {
		p.Stop(context.Background())
		t.Fatalf("Start = %v; want ErrNotStarted after 300ms", err)
	}
	if kids := leakcheck.Children(os.Getpid()); len(kids) != 0 {
		t.Errorf("children after the failed Start: %v", kids)
	}
}

// TestPoolProbeReady: a healthy pool starts once its first worker answers
// the Probe, then runs all its workers.
func TestPoolProbeReady(t *testing.T) {
	leakcheck.Check(t)
	var probes atomic.Int32
	probe := func(ctx context.Context, network, address string) error {
		probes.Add(1)
		return getValuesProbe(ctx, network, address)
	}
	start := time.Now()
	p, c, _ := newTestPool(t, &Pool{Workers: 3, Probe: probe})
	d := time.Since(start)
	if probes.Load() == 0 {
		t.Error("Start did not probe the workers")
	}
	if d > 3*time.Second {
		t.Errorf("Start took %v", d)
	}
	waitFor(t, "3 workers", func() bool { return len(p.PIDs()) == 3 })
	if _, err := getPID(c, "/"); err != nil {
		t.Fatalf("request: %v", err)
	}
}

func TestStderrTail(t *testing.T) {
	long := strings.Repeat("x", 2*tailBytes)
	for _, tt := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"empty", nil, "; nothing on its stderr"},
		{"blank", []string{"\n\n"}, "; nothing on its stderr"},
		{"one line", []string{"bad ini\n"}, `; its stderr ends: "bad ini"`},
		{"last lines", []string{"1\n2\n3\n", "4\n5\n6\n7\n"}, `; its stderr ends: "3\n4\n5\n6\n7"`},
		{"long", []string{"start\n", long}, `; its stderr ends: "` + long[:tailBytes] + `"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var tail stderrTail
			for _, w := range tt.writes {
				tail.Write([]byte(w))
			}
			if got := tail.quote(); got != tt.want {
				t.Errorf("quote() = %q; want %q", got, tt.want)
			}
			if len(tail.buf) > tailBytes {
				t.Errorf("kept %d bytes; want at most %d", len(tail.buf), tailBytes)
			}
		})
	}
}
