package bridge

import (
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"golang.org/x/sys/unix"
)

// liveRequest is a request in progress at a mount: what the status page
// lists and what the metrics count. It is part of the request's reqInfo,
// which the handlers of cgi, fastcgi and scgi reach through the request's
// context as its cgi.RequestObserver.
type liveRequest struct {
	mount      *mountStats  // nil until a mount (with an admin listener) takes the request
	prev, next *liveRequest // the ring of mount.live, guarded by mount.mu
	method     string
	uri        string
	start      time.Time // when the access log took the request
	queuedAt   time.Time // the request's goroutine only

	mu     sync.Mutex // guards pid and script, read by the status page
	pid    int
	script string
}

var _ cgi.RequestObserver = (*reqInfo)(nil)

// QueueEnter implements cgi.RequestObserver.
func (l *liveRequest) QueueEnter() {
	m := l.mount
	if m == nil {
		return
	}
	l.queuedAt = time.Now()
	m.maxReached.Add(1)
	n := int(m.waiting.Add(1))
	m.mu.Lock()
	m.maxQueue = max(m.maxQueue, n)
	m.mu.Unlock()
}

// QueueLeave implements cgi.RequestObserver.
func (l *liveRequest) QueueLeave() {
	m := l.mount
	if m == nil || l.queuedAt.IsZero() {
		return
	}
	m.waiting.Add(-1)
	m.queueWait.Observe(time.Since(l.queuedAt).Seconds())
	l.queuedAt = time.Time{}
}

// ScriptStarted implements cgi.RequestObserver.
func (l *liveRequest) ScriptStarted(pid int, s cgi.Script, spawn time.Duration) {
	l.mu.Lock()
	l.pid, l.script = pid, s.Filename
	l.mu.Unlock()
	if m := l.mount; m != nil && m.cgi != nil {
		m.cgi.started.Inc()
		m.cgi.count.Add(1)
		m.cgi.spawn.Observe(spawn.Seconds())
		m.cgi.running.Add(1)
	}
}

// ScriptEnded implements cgi.RequestObserver.
func (l *liveRequest) ScriptEnded(state *os.ProcessState, stop cgi.StopCause) {
	l.mu.Lock()
	l.pid = 0
	l.mu.Unlock()
	m := l.mount
	if m == nil || m.cgi == nil {
		return
	}
	m.cgi.running.Add(-1)
	if int(stop) < len(m.cgi.killed) && m.cgi.killed[stop] != nil {
		m.cgi.killed[stop].Inc()
	}
	if state != nil {
		m.cgi.exits.WithLabelValues(exitCode(state)).Inc()
	}
}

// Forwarded implements cgi.RequestObserver.
func (l *liveRequest) Forwarded(s cgi.Script) {
	script := s.Filename
	if script == "" {
		script = s.Name
	}
	l.mu.Lock()
	l.script = script
	l.mu.Unlock()
}

// Failed implements cgi.RequestObserver.
func (l *liveRequest) Failed(status int, err error) {
	m := l.mount
	if m == nil || status < http.StatusBadGateway || status > http.StatusGatewayTimeout {
		return
	}
	m.failures.WithLabelValues(strconv.Itoa(status), failureCause(status, err)).Inc()
}

// failureCause is the cause label of a 502, 503 or 504 ferry answered
// itself:
//
//	504 timeout         the script or application did not answer in time
//	503 queue           every script slot or backend connection stayed taken
//	503 app_overloaded  the FastCGI application answered FCGI_OVERLOADED
//	502 connect         the backend refused or did not take the connection
//	502 spawn           the CGI script could not be started
//	502 bad_response    the answer was missing, cut short or not a CGI response
func failureCause(status int, err error) string {
	var oe *net.OpError
	var pe *fs.PathError
	switch {
	case status == http.StatusGatewayTimeout:
		return "timeout"
	case status == http.StatusServiceUnavailable && errors.Is(err, fastcgi.ErrOverloaded):
		return "app_overloaded"
	case status == http.StatusServiceUnavailable:
		return "queue"
	case errors.As(err, &oe) && oe.Op == "dial":
		return "connect"
	case errors.As(err, &pe):
		return "spawn"
	}
	return "bad_response"
}

// exitCode is the code label of a reaped script: its exit status, or the
// name of the signal that ended it.
func exitCode(st *os.ProcessState) string {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		if name := unix.SignalName(ws.Signal()); name != "" {
			return name
		}
		return "signal " + strconv.Itoa(int(ws.Signal()))
	}
	return strconv.Itoa(st.ExitCode())
}
