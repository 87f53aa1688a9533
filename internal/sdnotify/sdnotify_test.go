package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := &Notifier{Socket: path}
	if err := n.Notify("READY=1", "STATUS=serving"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	k, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:k]), "READY=1\nSTATUS=serving\n"; got != want {
		t.Errorf("datagram %q; want %q", got, want)
	}
	for _, bad := range []string{"READY", "STATUS=a\nREADY=1"} {
		if err := n.Notify(bad); err == nil {
			t.Errorf("Notify(%q): no error", bad)
		}
	}
	var off Notifier
	if off.Enabled() || off.Notify("READY=1") != nil {
		t.Error("a Notifier with no socket must do nothing")
	}
}

func TestReloading(t *testing.T) {
	a := Reloading()
	if len(a) != 2 || a[0] != "RELOADING=1" || !strings.HasPrefix(a[1], "MONOTONIC_USEC=") {
		t.Fatalf("Reloading() = %q", a)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(a[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec <= 0 {
		t.Errorf("MONOTONIC_USEC %q: %v", a[1], err)
	}
	time.Sleep(2 * time.Millisecond)
	later, _ := strconv.ParseInt(strings.TrimPrefix(Reloading()[1], "MONOTONIC_USEC="), 10, 64)
	if later < usec+2000 {
		t.Errorf("MONOTONIC_USEC went from %d to %d in 2ms", usec, later)
	}
}

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tt := range []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"30000000", "", 15 * time.Second, false},
		{"30000000", self, 15 * time.Second, false},
		{"30000000", "1", 0, false}, // another process's watchdog
		{"abc", "", 0, true},
		{"0", "", 0, true},
	} {
		t.Setenv("WATCHDOG_USEC", tt.usec)
		t.Setenv("WATCHDOG_PID", tt.pid)
		got, err := WatchdogInterval()
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, %v; want %v (error: %v)", tt.usec, tt.pid, got, err, tt.want, tt.err)
		}
	}
}
