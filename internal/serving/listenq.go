package serving

import (
	"net"
	"syscall"
	"time"
)

// leftWait is how long a connection must have waited in the listen queue,
// unaccepted, before an accept loop whose Gate is full takes it (and
// closes a waiting connection for it). Workers that share a listening
// socket, one connection each (php-cgi's way), would otherwise take one
// another's connections: a worker whose connection has not sent or begun
// its request within minWait, its client or its goroutine held off the CPU
// on a loaded machine, sat in accept and took the next connection, which
// a free worker would have served, closing its own. With leftWait, a free
// worker takes it first, as php-cgi's workers do, each accepting only when
// free. A server alone on its socket pays leftWait once at the start of a
// flood: it then takes the connections queued at once (leftStreak).
const leftWait = minWait

// listenQueue looks at a listening socket's accept queue without
// accepting.
type listenQueue struct {
	rc syscall.RawConn
	// streak: until then, a connection queued is taken at once: one was
	// left over just now, so no free worker is taking them.
	streak time.Time
}

// newListenQueue returns the accept queue of l, or nil if l gives no
// descriptor (SyscallConn, as *net.TCPListener and *net.UnixListener
// have) or the system cannot tell: the accept loop then accepts as soon
// as its Gate lets it.
func newListenQueue(l net.Listener) *listenQueue {
	sc, ok := l.(syscall.Conn)
	if !ok || !canPollListener {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return &listenQueue{rc: rc}
}

// leftOver reports whether the accept loop of a full Gate may accept now:
// a connection has waited leftWait in the queue and no one took it. If
// none is queued, it waits for one to come (or for the listener to close)
// and reports false, for the loop to look at its Gate again; it reports
// false too once stop is closed, or if the connection was taken meanwhile.
func (q *listenQueue) leftOver(stop <-chan struct{}) bool {
	if !q.queued() {
		q.waitQueued()
		return false
	}
	if time.Now().Before(q.streak) {
		q.streak = time.Now().Add(leftWait)
		return true
	}
	if !sleepRunning(leftWait, stop) || !q.queued() {
		return false
	}
	q.streak = time.Now().Add(leftWait)
	return true
}

// queued reports whether a connection waits in the accept queue.
func (q *listenQueue) queued() bool {
	var ready bool
	if err := q.rc.Control(func(fd uintptr) { ready = readable(fd) }); err != nil {
		return true // closed: Accept says so
	}
	return ready
}

// waitQueued waits until a connection is queued or the listener closes.
func (q *listenQueue) waitQueued() {
	// Read calls the function again each time the poller says the
	// socket is readable, until it reports true.
	_ = q.rc.Read(func(fd uintptr) bool { return readable(fd) }) // an error: closed, which Accept reports
}

// sleepRunning sleeps d of time in which this process could run: a timer
// that fires over d late says the process was held off the CPU, and so,
// likely, were the other workers that d was for; it then sleeps d again,
// twice at most. It reports false once stop is closed.
func sleepRunning(d time.Duration, stop <-chan struct{}) bool {
	for range 3 {
		start := time.Now()
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return false
		}
		if time.Since(start) < 2*d {
			return true
		}
	}
	return true
}
