package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testdir"
	"golang.org/x/sys/unix"
)

// notifyMsg is one datagram to the notification socket, with the pid of
// the process that sent it.
type notifyMsg struct {
	pid  int
	vars []string
}

func (m notifyMsg) has(v string) bool { return slices.Contains(m.vars, v) }

// get returns the value of variable name, or "".
func (m notifyMsg) get(name string) string {
	for _, v := range m.vars {
		if val, ok := strings.CutPrefix(v, name+"="); ok {
			return val
		}
	}
	return ""
}

// notifySocket plays systemd's side of sd_notify: a unixgram socket that
// takes the sender's credentials (SO_PASSCRED), as systemd's does.
type notifySocket struct {
	path string
	msgs chan notifyMsg
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	ns := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock"), msgs: make(chan notifyMsg, 1024)}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	go func() {
		defer close(ns.msgs)
		buf, oob := make([]byte, 4096), make([]byte, syscall.CmsgSpace(syscall.SizeofUcred))
		for {
			n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
			if err != nil {
				return
			}
			m := notifyMsg{vars: strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n")}
			if cms, err := syscall.ParseSocketControlMessage(oob[:oobn]); err == nil && len(cms) > 0 {
				if cred, err := syscall.ParseUnixCredentials(&cms[0]); err == nil {
					m.pid = int(cred.Pid)
				}
			}
			ns.msgs <- m
		}
	}()
	return ns
}

// expect returns the first message that match accepts, within timeout;
// the others before it are passed to skip, which fails the test if they
// must not come.
func (ns *notifySocket) expect(t *testing.T, what string, match func(notifyMsg) bool, skip func(notifyMsg)) notifyMsg {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-ns.msgs:
			if match(m) {
				return m
			}
			if skip != nil {
				skip(m)
			}
		case <-timeout:
			t.Fatalf("no %s from ferry within 30s", what)
		}
	}
}

// monotonicUsec reads CLOCK_MONOTONIC, as systemd and ferry do.
func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Sec*1_000_000 + ts.Nsec/1_000
}

// TestSystemdNotify plays systemd's notification socket for ferry serve
// under Type=notify with WatchdogSec=: READY=1 once it listens, WATCHDOG=1
// at half WATCHDOG_USEC, RELOADING=1 with MONOTONIC_USEC then READY=1
// around a reload (SIGHUP), MAINPID= naming the new process on an upgrade
// (SIGUSR2), which then takes over the watchdog, and STOPPING=1 on
// SIGTERM.
func TestSystemdNotify(t *testing.T) {
	leakcheck.Check(t)
	ns := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", ns.path)
	t.Setenv("WATCHDOG_USEC", "200000") // WATCHDOG=1 every 100 ms
	dir := testdir.Open(t)
	writeExec(t, filepath.Join(dir, "hi.sh"), "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhi'\n")
	pidFile := filepath.Join(dir, "ferry.pid")
	p := startFerry(t, "--mount", "/cgi-bin/=cgi:"+dir, "--pid-file", pidFile)
	pid := p.cmd.Process.Pid
	watchdog := func(m notifyMsg) {
		if !m.has("WATCHDOG=1") || len(m.vars) != 1 {
			t.Errorf("unexpected notification %v from %d", m.vars, m.pid)
		}
	}

	ready := ns.expect(t, "READY=1", func(m notifyMsg) bool { return m.has("READY=1") }, watchdog)
	if ready.pid != pid {
		t.Errorf("READY=1 came from pid %d; want ferry's %d", ready.pid, pid)
	}
	for range 3 {
		if m := ns.expect(t, "WATCHDOG=1", func(m notifyMsg) bool { return m.has("WATCHDOG=1") }, watchdog); m.pid != pid {
			t.Errorf("WATCHDOG=1 came from pid %d; want %d", m.pid, pid)
		}
	}

	before := monotonicUsec(t)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	reloading := ns.expect(t, "RELOADING=1", func(m notifyMsg) bool { return m.has("RELOADING=1") }, watchdog)
	usec, err := strconv.ParseInt(reloading.get("MONOTONIC_USEC"), 10, 64)
	if err != nil || usec < before || usec > monotonicUsec(t) {
		t.Errorf("RELOADING=1 came with %v; want MONOTONIC_USEC between %d and now", reloading.vars, before)
	}
	ns.expect(t, "READY=1 after the reload", func(m notifyMsg) bool { return m.has("READY=1") }, watchdog)
	if code, body := httpGet(t, p.URL+"/cgi-bin/hi.sh"); code != 200 || body != "hi" {
		t.Errorf("after the reload: %d %q", code, body)
	}

	// The upgrade: the old process names the new one main; the new one
	// does not say READY=1 (the service is ready already) and takes the
	// watchdog over.
	if err := p.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	mainpid := ns.expect(t, "MAINPID=", func(m notifyMsg) bool { return m.get("MAINPID") != "" }, func(m notifyMsg) {
		if m.pid != pid || !m.has("WATCHDOG=1") {
			t.Errorf("before MAINPID=: %v from %d; want only the old process's WATCHDOG=1", m.vars, m.pid)
		}
	})
	newPID := waitNewPID(t, pidFile, pid)
	if mainpid.pid != pid || mainpid.get("MAINPID") != strconv.Itoa(newPID) {
		t.Errorf("%v from %d; want MAINPID=%d from the old process %d", mainpid.vars, mainpid.pid, newPID, pid)
	}
	t.Cleanup(func() { syscall.Kill(newPID, syscall.SIGKILL) })
	ns.expect(t, "WATCHDOG=1 from the new process", func(m notifyMsg) bool { return m.pid == newPID && m.has("WATCHDOG=1") }, func(m notifyMsg) {
		if !m.has("WATCHDOG=1") || m.pid != pid {
			t.Errorf("after MAINPID=: %v from %d; want only WATCHDOG=1 (from the old process, until it has handed over)", m.vars, m.pid)
		}
	})
	if code, body := httpGet(t, p.URL+"/cgi-bin/hi.sh"); code != 200 || body != "hi" {
		t.Errorf("after the upgrade: %d %q", code, body)
	}

	if err := syscall.Kill(newPID, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopping := ns.expect(t, "STOPPING=1", func(m notifyMsg) bool { return m.has("STOPPING=1") }, func(m notifyMsg) {
		if !m.has("WATCHDOG=1") || m.pid != newPID {
			t.Errorf("%v from %d; want only the new process's WATCHDOG=1", m.vars, m.pid)
		}
	})
	if stopping.pid != newPID {
		t.Errorf("STOPPING=1 came from %d; want the new process %d", stopping.pid, newPID)
	}
	for deadline := time.Now().Add(30 * time.Second); leakcheck.Alive(newPID) || leakcheck.Alive(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("ferry still runs 30s after SIGTERM:\n%s", p.logs)
		}
	}
	http.DefaultClient.CloseIdleConnections() // leakcheck counts them
}

// waitNewPID waits until the pid file names a process other than old.
func waitNewPID(t *testing.T, pidFile string, old int) int {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(pidFile)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid != old {
			return pid
		}
	}
	t.Fatalf("%s never named the new ferry", pidFile)
	return 0
}

// TestSystemdWatchdogOtherPID: a WATCHDOG_PID naming another process means
// the watchdog is not ferry's (sd_watchdog_enabled(3)): no WATCHDOG=1.
func TestSystemdWatchdogOtherPID(t *testing.T) {
	ns := listenNotify(t)
	t.Setenv("NOTIFY_SOCKET", ns.path)
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", "1")
	p := startFerry(t, "--root", t.TempDir())
	ns.expect(t, "READY=1", func(m notifyMsg) bool { return m.has("READY=1") }, nil)
	time.Sleep(300 * time.Millisecond)
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for m := range ns.msgs {
		if m.has("STOPPING=1") {
			return
		}
		if m.has("WATCHDOG=1") {
			t.Fatalf("WATCHDOG=1 with WATCHDOG_PID=1; want none")
		}
	}
}

// TestSystemdUnitsVerify runs systemd-analyze verify on the example units
// in dist/systemd, with ferry's path in their ExecStart= pointing at this
// test binary.
func TestSystemdUnitsVerify(t *testing.T) {
	bins := peerstest.Need(t, "systemd-analyze")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	units, err := filepath.Glob("../../dist/systemd/*")
	if err != nil || len(units) < 4 {
		t.Fatalf("dist/systemd holds %v (%v); want ferry.service, ferry.socket, ferry@.service, ferry@.socket", units, err)
	}
	dir := t.TempDir()
	var names []string
	for _, u := range units {
		b, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(u)
		text := strings.ReplaceAll(string(b), "/usr/local/bin/ferry", self)
		if strings.Contains(name, "@") {
			name = strings.Replace(name, "@", "@www-data", 1) // an instance of the template
		}
		mustWrite(t, filepath.Join(dir, name), 0o644, text)
		names = append(names, filepath.Join(dir, name))
	}
	cmd := exec.Command(bins["systemd-analyze"], append([]string{"verify", "--man=no"}, names...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "System has not been booted with systemd") || strings.Contains(string(out), "Failed to") && strings.Contains(string(out), "bus") {
			t.Skipf("systemd-analyze verify cannot run here: %s", out)
		}
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	if len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify warns:\n%s", out)
	}
}

// TestSystemdUnitsInREADME: every line of the README's excerpt of the
// units is in the unit file it names.
func TestSystemdUnitsInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```ini\n# dist/systemd/")
	if !ok {
		t.Fatal("README.md shows no unit of dist/systemd in an ini block")
	}
	block, _, _ = strings.Cut("# dist/systemd/"+block, "```")
	var unit string
	checked := 0
	for _, line := range strings.Split(block, "\n") {
		if name, ok := strings.CutPrefix(line, "# dist/systemd/"); ok {
			b, err := os.ReadFile("../../dist/systemd/" + strings.Fields(name)[0])
			if err != nil {
				t.Fatal(err)
			}
			unit = string(b)
			continue
		}
		if line == "" {
			continue
		}
		if !slices.Contains(strings.Split(unit, "\n"), line) {
			t.Errorf("README's unit line %q is not in the unit file", line)
		}
		checked++
	}
	if checked < 10 {
		t.Errorf("only %d lines of units in the README checked", checked)
	}
}
