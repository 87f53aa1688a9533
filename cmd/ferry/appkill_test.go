package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/procfs"
)

// wsgiSpawner is a WSGI application that starts, on each request, the
// processes an application may leave running: a program
// (subprocess.Popen), a shell with a background grandchild, and a
// multiprocessing child (a fork of the worker). Each writes its pid in
// the directory TEST_STATE names; the answer is "started".
const wsgiSpawner = `import multiprocessing, os, subprocess, time


def _wait():
    with open(os.path.join(os.environ["TEST_STATE"], "py-mp"), "w") as f:
        f.write("%d\n" % os.getpid())
    time.sleep(300)


def application(environ, start_response):
    state = os.environ["TEST_STATE"]
    p = subprocess.Popen(["sleep", "300"])
    with open(os.path.join(state, "py-popen"), "w") as f:
        f.write("%d\n" % p.pid)
    subprocess.Popen(["sh", "-c", 'sleep 300 & echo $! > "$TEST_STATE/py-grandchild"; wait'])
    multiprocessing.Process(target=_wait).start()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"started\n"]
`

// psgiSpawner is wsgiSpawner in Perl: a forked and exec'd program, a
// shell with a background grandchild, and a fork of the worker.
const psgiSpawner = `use strict;
use warnings;
use POSIX ();

sub note {
	my ($name, $pid) = @_;
	open my $f, '>', "$ENV{TEST_STATE}/$name" or die "$name: $!";
	print $f "$pid\n";
	close $f;
}

sub {
	my $pid = fork // die "fork: $!";
	if (!$pid) { exec 'sleep', '300'; POSIX::_exit(127) }
	note('pl-exec', $pid);
	if (!fork) { exec 'sh', '-c', 'sleep 300 & echo $! > "$TEST_STATE/pl-grandchild"; wait'; POSIX::_exit(127) }
	$pid = fork // die "fork: $!";
	if (!$pid) { sleep 300; POSIX::_exit(0) }
	note('pl-fork', $pid);
	return [200, ['Content-Type' => 'text/plain'], ["started\n"]];
};
`

// descendants returns the live processes below pid, from /proc.
func descendants(pid int) []int {
	kids := make(map[int][]int)
	procfs.Each(func(p procfs.Process) {
		if p.State != 'Z' {
			kids[p.PPID] = append(kids[p.PPID], p.PID)
		}
	})
	var out []int
	for next := kids[pid]; len(next) > 0; {
		c := next[0]
		next = append(next[1:], kids[c]...)
		out = append(out, c)
	}
	return out
}

// writeSpawners writes the WSGI and PSGI applications that start
// subprocesses, app.py and app.psgi, in dir.
func writeSpawners(t *testing.T, dir string) {
	t.Helper()
	for name, app := range map[string]string{"app.py": wsgiSpawner, "app.psgi": psgiSpawner} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(app), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAppChildrenDieWithKilledFerry: a ferry ended by SIGKILL leaves
// nothing of its WSGI and PSGI applications running: not the workers
// (their parent-death signal), nor what they started (a program, a shell
// and its background job, a fork of the worker), which its workers'
// guards kill with their process groups.
func TestAppChildrenDieWithKilledFerry(t *testing.T) {
	py := pythonWith(t)
	peerstest.Need(t, "perl")
	dir, state := t.TempDir(), t.TempDir()
	writeSpawners(t, dir)
	p := startFerry(t, "--mount", "/py/=wsgi:"+filepath.Join(dir, "app.py")+"?workers=2&python="+url.QueryEscape(py),
		"--mount", "/pl/=psgi:"+filepath.Join(dir, "app.psgi")+"?workers=2", "--env", "TEST_STATE="+state)
	for _, path := range []string{"/py/", "/pl/"} {
		if code, body := httpGet(t, p.URL+path); code != http.StatusOK || body != "started\n" {
			t.Fatalf("GET %s: %d %q", path, code, body)
		}
	}
	var apps []int
	for _, name := range []string{"py-popen", "py-grandchild", "py-mp", "pl-exec", "pl-grandchild", "pl-fork"} {
		apps = append(apps, waitFile(t, filepath.Join(state, name)))
	}
	all := descendants(p.cmd.Process.Pid)
	t.Cleanup(func() { // none left behind by a failure either
		for _, pid := range append(all, apps...) {
			if leakcheck.Alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	for _, pid := range apps {
		if !slices.Contains(all, pid) {
			t.Fatalf("the application's process %d is not below ferry (%v)", pid, all)
		}
	}

	if err := p.stop(t, syscall.SIGKILL); err == nil {
		t.Fatal("ferry exited cleanly on SIGKILL")
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		var left []string
		for _, pid := range all {
			if leakcheck.Alive(pid) {
				cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
				left = append(left, strconv.Itoa(pid)+" "+strings.ReplaceAll(strings.TrimSpace(string(cmdline)), "\x00", " "))
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("3s after ferry's SIGKILL, %d of the %d processes it and its workers started still run:\n%s",
				len(left), len(all), strings.Join(left, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ferryDirs returns the names of the ferry-app- and ferry-spawn-
// directories in dir that ferry pid made.
func ferryDirs(t *testing.T, dir string, pid int) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		for _, prefix := range []string{"ferry-app-", "ferry-spawn-"} {
			if strings.HasPrefix(e.Name(), prefix+strconv.Itoa(pid)+"-") {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// TestStaleTempDirsRemoved: the temporary directories of a ferry killed
// with SIGKILL (its workers' sockets, the adapters and their scoreboards)
// are removed when the next ferry starts its workers, and those of a
// ferry still running are kept.
func TestStaleTempDirsRemoved(t *testing.T) {
	py := pythonWith(t)
	peerstest.Need(t, "perl")
	dir, tmp := t.TempDir(), t.TempDir()
	writeSpawners(t, dir)
	t.Setenv("TMPDIR", tmp)
	args := []string{"--mount", "/py/=wsgi:" + filepath.Join(dir, "app.py") + "?workers=1&python=" + url.QueryEscape(py),
		"--mount", "/pl/=psgi:" + filepath.Join(dir, "app.psgi") + "?workers=1", "--env", "TEST_STATE=" + dir}
	running := startFerry(t, args...)
	killed := startFerry(t, args...)
	keep, stale := ferryDirs(t, tmp, running.cmd.Process.Pid), ferryDirs(t, tmp, killed.cmd.Process.Pid)
	if len(keep) != 4 || len(stale) != 4 {
		t.Fatalf("the two ferrys made %q and %q in %s; want four directories each, two per pool", keep, stale, tmp)
	}
	killed.stop(t, syscall.SIGKILL)

	next := startFerry(t, args...)
	if left := ferryDirs(t, tmp, killed.cmd.Process.Pid); len(left) > 0 {
		t.Errorf("after the next start, %q of the killed ferry are left in %s", left, tmp)
	}
	if now := ferryDirs(t, tmp, running.cmd.Process.Pid); !slices.Equal(now, keep) {
		t.Errorf("the running ferry's directories are %q; want %q kept", now, keep)
	}
	if mine := ferryDirs(t, tmp, next.cmd.Process.Pid); len(mine) != 4 {
		t.Errorf("the next ferry made %q; want four directories", mine)
	}
	if n := len(next.logs.Lines("of a ferry no longer running")); n != 4 {
		t.Errorf("the next ferry logged %d removals; want 4:\n%s", n, next.logs)
	}
	for _, p := range []*ferryProc{running, next} {
		if err := p.stop(t, syscall.SIGTERM); err != nil {
			t.Errorf("ferry exited with %v", err)
		}
	}
	if left := append(ferryDirs(t, tmp, running.cmd.Process.Pid), ferryDirs(t, tmp, next.cmd.Process.Pid)...); len(left) > 0 {
		t.Errorf("%q left after a clean stop", left)
	}
}

// appProcesses starts the spawning applications' children through p (a
// GET on /py/ and on /pl/) and returns their pids, read from state, with
// every process below ferry then.
func appProcesses(t *testing.T, p *ferryProc, state string) (apps, all []int) {
	t.Helper()
	for _, path := range []string{"/py/", "/pl/"} {
		if code, body := httpGet(t, p.URL+path); code != http.StatusOK || body != "started\n" {
			t.Fatalf("GET %s: %d %q", path, code, body)
		}
	}
	for _, name := range []string{"py-popen", "py-grandchild", "py-mp", "pl-exec", "pl-grandchild", "pl-fork"} {
		apps = append(apps, waitFile(t, filepath.Join(state, name)))
	}
	all = descendants(p.cmd.Process.Pid)
	t.Cleanup(func() { // none left behind by a failure either
		for _, pid := range append(all, apps...) {
			if leakcheck.Alive(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	for _, pid := range apps {
		if !slices.Contains(all, pid) {
			t.Fatalf("the application's process %d is not below ferry (%v)", pid, all)
		}
	}
	return apps, all
}

// TestAppChildrenStopWithApp: what a WSGI or PSGI application started is
// stopped with it: on ferry's shutdown (SIGTERM; SIGQUIT, which exits at
// once), and when a reload removes its mount, while ferry serves on. The
// group of each worker gets SIGTERM with it, and SIGKILL once it exits.
func TestAppChildrenStopWithApp(t *testing.T) {
	py := pythonWith(t)
	peerstest.Need(t, "perl")
	for _, way := range []string{"SIGTERM", "SIGQUIT", "reload"} {
		t.Run(way, func(t *testing.T) {
			dir, state := t.TempDir(), t.TempDir()
			writeSpawners(t, dir)
			if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			apps := fmt.Sprintf(`
[mount."/py/"]
backend = "wsgi:%s?workers=2&python=%s"

[mount."/pl/"]
backend = "psgi:%s?workers=2"
`, filepath.Join(dir, "app.py"), url.QueryEscape(py), filepath.Join(dir, "app.psgi"))
			base := fmt.Sprintf(`listen = ["http://127.0.0.1:0"]
root = %q

[defaults]
env = { TEST_STATE = %q }
`, dir, state)
			file := filepath.Join(dir, "ferry.toml")
			if err := os.WriteFile(file, []byte(base+apps), 0o644); err != nil {
				t.Fatal(err)
			}
			p := startFerryArgs(t, "--config", file)
			_, all := appProcesses(t, p, state)
			switch way {
			case "SIGTERM":
				if err := p.stop(t, syscall.SIGTERM); err != nil {
					t.Errorf("ferry exited with %v", err)
				}
			case "SIGQUIT":
				p.stop(t, syscall.SIGQUIT)
			case "reload":
				if err := os.WriteFile(file, []byte(base), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
				waitLog(t, p, "configuration reloaded")
				// Only ferry itself is left: no worker, no guard, nothing
				// the applications started.
				all = slices.DeleteFunc(all, func(pid int) bool { return pid == p.cmd.Process.Pid })
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				var left []string
				for _, pid := range all {
					if leakcheck.Alive(pid) {
						cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
						left = append(left, strconv.Itoa(pid)+" "+strings.ReplaceAll(strings.TrimSpace(string(cmdline)), "\x00", " "))
					}
				}
				if len(left) == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("10s after %s, %d of the %d processes ferry and its workers started still run:\n%s",
						way, len(left), len(all), strings.Join(left, "\n"))
				}
				time.Sleep(20 * time.Millisecond)
			}
			if way == "reload" {
				if code, body := httpGet(t, p.URL+"/hello.txt"); code != http.StatusOK || body != "hello\n" {
					t.Errorf("after the reload, GET /hello.txt: %d %q", code, body)
				}
				if code, _ := httpGet(t, p.URL+"/py/"); code != http.StatusNotFound {
					t.Errorf("after the reload, GET /py/: %d; want 404", code)
				}
				if kids := descendants(p.cmd.Process.Pid); len(kids) > 0 {
					t.Errorf("after the reload, ferry still has processes below it: %v", kids)
				}
			}
		})
	}
}
