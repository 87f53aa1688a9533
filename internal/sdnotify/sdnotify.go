// Package sdnotify speaks systemd's service notification protocol
// (sd_notify(3), systemd.service(5) Type=notify): the service sends
// datagrams of newline-separated VARIABLE=VALUE assignments to the unix
// socket named by $NOTIFY_SOCKET, such as READY=1 once it serves,
// RELOADING=1 and READY=1 around a reload, STOPPING=1 when it shuts down,
// and WATCHDOG=1 at least every $WATCHDOG_USEC microseconds when the unit
// sets WatchdogSec=. It is a few lines; a library would bring nothing more.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends notifications to the service manager. The zero value, as
// FromEnv returns it outside systemd, sends nothing.
type Notifier struct {
	// Socket is the path of the service manager's socket; one starting
	// with "@" is in the abstract namespace. If empty, Notify does nothing.
	Socket string
}

// FromEnv returns the Notifier of $NOTIFY_SOCKET. The variable is kept, so
// that a new process started by an upgrade finds it too.
func FromEnv() *Notifier { return &Notifier{Socket: os.Getenv("NOTIFY_SOCKET")} }

// Enabled reports whether notifications go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.Socket != "" }

// Notify sends the assignments, such as "READY=1" and "STATUS=serving", in
// one datagram. It does nothing when n is not Enabled.
func (n *Notifier) Notify(assignments ...string) error {
	if !n.Enabled() {
		return nil
	}
	for _, a := range assignments {
		if !strings.Contains(a, "=") || strings.Contains(a, "\n") {
			return fmt.Errorf("sdnotify: %q: want one VARIABLE=VALUE line", a)
		}
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.Socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(strings.Join(assignments, "\n") + "\n")); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Reloading returns the assignments that announce a reload: RELOADING=1
// and MONOTONIC_USEC, the time on CLOCK_MONOTONIC, which systemd asks
// for to tell this reload from an earlier one. READY=1 ends it.
func Reloading() []string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return []string{"RELOADING=1"}
	}
	usec := ts.Sec*1_000_000 + ts.Nsec/1_000
	return []string{"RELOADING=1", "MONOTONIC_USEC=" + strconv.FormatInt(usec, 10)}
}

// WatchdogInterval returns how often to send WATCHDOG=1: half the
// $WATCHDOG_USEC the service manager asks for, as sd_watchdog_enabled(3)
// advises. It returns 0 when no watchdog is asked of this process
// ($WATCHDOG_PID, when set, names another one).
func WatchdogInterval() (time.Duration, error) {
	v := os.Getenv("WATCHDOG_USEC")
	if v == "" {
		return 0, nil
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0, nil
	}
	usec, err := strconv.ParseInt(v, 10, 64)
	if err != nil || usec <= 0 {
		return 0, errors.New("sdnotify: WATCHDOG_USEC=" + strconv.Quote(v) + ": want a positive number of microseconds")
	}
	return time.Duration(usec) * time.Microsecond / 2, nil
}
