package serving

import (
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// Gate bounds the connections open on a listener. A connection that has
// not sent a complete request head yet, or waits idle between requests,
// is marked waiting ([Slot.SetWaiting]); when the bound is reached, a new
// connection closes the one that has been waiting longest instead of
// waiting itself, as nginx reuses its keep-alive and request-waiting
// connections when worker_connections run out ("worker_connections are
// not enough, reusing connections"). So a flood of connections that send
// nothing, or a byte now and then, never keeps a normal request out: only
// connections serving a request hold their place.
//
// A waiting connection whose bytes sit unread in its socket's receive
// queue is not closed (for up to queuedSpare): its request has come, and
// its goroutine, late on a loaded machine, is about to read it. nginx
// likewise stops reusing a connection once its request's first bytes are
// read. A silent connection has nothing queued, and a slow one's odd byte
// is read as soon as it comes, so both are closed as before. This needs
// the connection's descriptor: a *net.TCPConn or *net.UnixConn, or a
// wrapper of one with a NetConn method as *tls.Conn has; another kind of
// connection is closed without looking. Each front has its own Gate; the
// zero value is not usable, use [NewGate].
type Gate struct {
	max  int
	log  *zerolog.Logger
	name string // the front, for the log: "http", "fastcgi", "scgi"

	mu       sync.Mutex // guards the fields below
	open     int        // connections open
	evicting int        // waiting connections closed, whose slot is not back yet
	waiting  slotList   // the slots waiting, longest waiting first
	saidAt   time.Time  // when the last line about the bound was logged
	unsaid   int        // connections closed for room since then
	room     chan struct{}
}

// logEvery is how often at most a Gate logs that it is full.
const logEvery = 10 * time.Second

// minWait is how long a connection must have waited before it may be
// closed for a new one: a connection just accepted is about to send its
// request, and workers sharing a listening socket, one connection each
// (php-cgi's way), must not take one another's connections (which
// [Server]'s accept loop also sees to: leftWait). It also
// bounds how fast a full Gate turns over: at most max connections per
// minWait. At 100 ms, 1,024 places took 10,240 connections a second,
// slower than one client opens idle connections over loopback (15,000 a
// second in TestFloodIdle): the listen backlog filled, and a normal
// request waited behind 4,096 flood connections, 350 ms. A web server
// sends its request as soon as it has connected, so it is in the socket
// when the connection is accepted; 20 ms leaves its goroutine time to
// read it on a loaded machine; if it has not, its bytes are still queued,
// and it is spared for that (queuedSpare).
const minWait = 20 * time.Millisecond

// queuedSpare bounds how long a waiting connection is spared for having
// bytes queued: its goroutine reads them within milliseconds, or a few
// hundred on a machine loaded far past its cores. A connection whose bytes
// stay unread longer has a goroutine held elsewhere (writing answers to
// management records that its peer never reads), not about to serve a
// request, and is closed as a silent one is.
const queuedSpare = time.Second

// queuedRecheck is how soon a full Gate looks again when every connection
// it could close has bytes queued: reading them marks no change in the
// Gate (the connection serves a request, or still waits for the rest of
// its head), so it polls.
const queuedRecheck = minWait / 5

// maxProbes bounds the waiting connections that one look at a full Gate
// checks for queued bytes, the longest waiting first: one system call
// each. In a flood the first has nothing queued.
const maxProbes = 4

// NewGate returns a Gate admitting max connections at once (at least
// one), logging to log (nil: nowhere) under the front's name.
func NewGate(n int, name string, log *zerolog.Logger) *Gate {
	return &Gate{max: max(n, 1), name: name, log: Logger(log), room: make(chan struct{}, 1)}
}

// FDBound returns n, or half the process's open-file limit if that is
// less (and at least 16): the other half is left for what the requests
// open (a script's pipes, a backend connection, a spooled body), so that
// the connections alone can never make accept fail with EMFILE.
func FDBound(n int) int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur >= 1<<40 { // none, or RLIM_INFINITY
		return n
	}
	return min(n, max(int(rl.Cur/2), 16))
}

// full reports whether every slot is taken: a connection accepted now
// gets in only by closing a waiting one.
func (g *Gate) full() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open-g.evicting >= g.max
}

// Max returns the bound.
func (g *Gate) Max() int { return g.max }

// Slot is one connection's place in a Gate.
type Slot struct {
	g       *Gate
	conn    io.Closer // the connection; set once
	queued  bool      // in g.waiting
	prev    *Slot     // in g.waiting
	next    *Slot
	since   time.Time // when it began to wait
	evicted bool
	done    bool
}

// Wait waits until a connection may be accepted: a slot is free, or a
// connection that has waited at least minWait, with no bytes queued, can
// be closed for the new one. It returns false once stop is closed.
func (g *Gate) Wait(stop <-chan struct{}) bool {
	for {
		ok, again := g.look()
		if ok {
			return true
		}
		if !g.sleep(again, stop) {
			return false
		}
	}
}

// look reports whether a connection may be accepted now, as Wait waits
// for; if not, it also returns how soon to look again (0: once a slot
// frees or a connection starts waiting).
func (g *Gate) look() (bool, time.Duration) {
	var buf [maxProbes]candidate
	g.mu.Lock()
	if g.open-g.evicting < g.max {
		g.mu.Unlock()
		return true, 0
	}
	cs, again := g.candidatesLocked(buf[:0])
	if g.waiting.head == nil {
		g.sayFullLocked()
	}
	g.mu.Unlock()
	if len(cs) > 0 {
		if pickIdle(cs) != nil {
			return true, 0
		}
		again = queuedRecheck
	}
	return false, again
}

// sleep waits for d (forever if d is not positive), a slot to free or a
// connection to start waiting, or stop; it reports false for stop.
func (g *Gate) sleep(d time.Duration, stop <-chan struct{}) bool {
	var timer <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-g.room:
	case <-timer:
	case <-stop:
		return false
	}
	return true
}

// Admit takes a slot for c, a connection just accepted.
// If every slot is taken, the connection that has waited longest for a
// request is closed to make room, if it has waited minWait and has no
// bytes queued (else the next longest waiting, among the first
// maxProbes); otherwise Admit waits for one to end or to become one that
// may be closed. The new connection starts waiting (for its request
// head). Admit returns nil once stop is closed.
func (g *Gate) Admit(c io.Closer, stop <-chan struct{}) *Slot {
	var buf [maxProbes]candidate
	for {
		g.mu.Lock()
		if g.open-g.evicting < g.max {
			s := g.admitLocked(c)
			g.mu.Unlock()
			return s
		}
		cs, _ := g.candidatesLocked(buf[:0])
		if g.waiting.head == nil {
			g.sayFullLocked()
		}
		g.mu.Unlock()
		if v := pickIdle(cs); v != nil {
			g.mu.Lock()
			var victim *Slot
			// The lock was let go for the look: the victim may have
			// begun serving a request, or waiting anew, meanwhile.
			if g.open-g.evicting >= g.max && v.s.queued && v.s.since.Equal(v.since) {
				victim = v.s
				g.evictLocked(victim, "connections open, the limit")
			}
			if g.open-g.evicting < g.max {
				s := g.admitLocked(c)
				g.mu.Unlock()
				if victim != nil {
					_ = victim.conn.Close() // an error: it was closed already
				}
				return s
			}
			g.mu.Unlock()
			continue // the Gate changed: look again
		}
		if !g.sleep(minWait/5, stop) {
			return nil
		}
	}
}

// admitLocked takes a slot for c, which starts waiting. g.mu is held.
func (g *Gate) admitLocked(c io.Closer) *Slot {
	s := &Slot{g: g, conn: c, since: time.Now()}
	g.open++
	g.waiting.pushBack(s)
	return s
}

// candidate is a waiting slot that may be closed for room, with the time
// it began to wait when it was picked.
type candidate struct {
	s     *Slot
	since time.Time
}

// candidatesLocked appends to cs the slots that have waited longest, at
// least minWait each, up to maxProbes of them, and returns them. If there
// are none, it also returns how long until the longest waiting one will
// have waited minWait, or 0 if none waits. g.mu is held.
func (g *Gate) candidatesLocked(cs []candidate) ([]candidate, time.Duration) {
	now := time.Now()
	for s := g.waiting.head; s != nil && len(cs) < maxProbes; s = s.next {
		w := now.Sub(s.since)
		if w < minWait {
			if len(cs) == 0 {
				return cs, minWait - w
			}
			break
		}
		cs = append(cs, candidate{s: s, since: s.since})
	}
	return cs, 0
}

// pickIdle returns the first of cs that may be closed: nothing is queued
// on its connection, it has waited queuedSpare, or its queue cannot be
// seen. It returns nil if every one has bytes queued. It makes a system
// call for each connection looked at, so g.mu must not be held; a
// candidate's conn never changes, and a look at a connection closed
// meanwhile finds it cannot see, which the caller's check under the lock
// then discards.
func pickIdle(cs []candidate) *candidate {
	now := time.Now()
	for i := range cs {
		if now.Sub(cs[i].since) >= queuedSpare {
			return &cs[i]
		}
		if n, ok := queuedBytes(cs[i].s.conn); !ok || n == 0 {
			return &cs[i]
		}
	}
	return nil
}

// queuedBytes reports how many bytes wait unread in c's receive queue,
// and whether it could tell: c, or the connection it wraps (its NetConn
// method), gives its descriptor through SyscallConn.
func queuedBytes(c io.Closer) (int, bool) {
	var x any = c
	for range 4 { // a wrapper of a wrapper, at most
		if sc, ok := x.(syscall.Conn); ok {
			rc, err := sc.SyscallConn()
			if err != nil {
				return 0, false
			}
			return inq(rc)
		}
		nc, ok := x.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		x = nc.NetConn()
	}
	return 0, false
}

// Shed closes the connection that has waited longest, if any, to give its
// descriptor back: on accept failing with EMFILE ([IsFDExhausted]). It
// does not look for bytes queued: a descriptor is needed now.
func (g *Gate) Shed() {
	g.mu.Lock()
	victim := g.waiting.head
	if victim != nil {
		g.evictLocked(victim, "accept: too many open files")
	}
	g.mu.Unlock()
	if victim != nil {
		_ = victim.conn.Close() // an error: it was closed already
	}
}

// evictLocked takes s out of the waiting list for its connection to be
// closed outside the lock, and logs (at most every logEvery). g.mu is
// held.
func (g *Gate) evictLocked(s *Slot, why string) {
	g.waiting.remove(s)
	s.evicted = true
	g.evicting++
	g.unsaid++
	if now := time.Now(); now.Sub(g.saidAt) >= logEvery {
		g.saidAt = now
		g.log.Warn().Str("front", g.name).Int("max_conns", g.max).Int("closed", g.unsaid).
			Msg(g.name + ": " + why + "; closing the connections that waited longest for a request")
		g.unsaid = 0
	}
}

// sayFullLocked logs (at most every logEvery) that every slot is taken by
// a connection serving a request. g.mu is held.
func (g *Gate) sayFullLocked() {
	if now := time.Now(); now.Sub(g.saidAt) >= logEvery {
		g.saidAt = now
		g.log.Warn().Str("front", g.name).Int("max_conns", g.max).
			Msg(g.name + ": connections open, the limit, each serving a request; new ones wait in the listen backlog")
	}
}

// SetWaiting marks the connection waiting (no request in progress: its
// head has not all come, or it is idle between requests), which makes it
// the first to close when the Gate is full, or serving, which keeps its
// place.
func (s *Slot) SetWaiting(waiting bool) {
	if s == nil {
		return
	}
	g := s.g
	g.mu.Lock()
	if s.done || s.evicted {
		g.mu.Unlock()
		return
	}
	switch {
	case waiting && !s.queued:
		s.since = time.Now()
		g.waiting.pushBack(s)
		g.mu.Unlock()
		g.wake() // the accept loop may wait for one
		return
	case !waiting && s.queued:
		g.waiting.remove(s)
	}
	g.mu.Unlock()
}

// Release gives the slot back once its connection has closed. Later calls
// do nothing.
func (s *Slot) Release() {
	if s == nil {
		return
	}
	g := s.g
	g.mu.Lock()
	if s.done {
		g.mu.Unlock()
		return
	}
	s.done = true
	if s.queued {
		g.waiting.remove(s)
	}
	if s.evicted {
		g.evicting--
	}
	g.open--
	g.mu.Unlock()
	g.wake()
}

// wake lets a waiting Wait look again.
func (g *Gate) wake() {
	select {
	case g.room <- struct{}{}:
	default: // a token is there already
	}
}

// IsFDExhausted reports whether err is an accept failing for want of a
// file descriptor or of kernel memory: a condition that passes as
// connections close, not a broken listener.
func IsFDExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// slotList is a list of waiting slots, linked through the slots
// themselves: marking a connection waiting, once per request, allocates
// nothing.
type slotList struct {
	head, tail *Slot
}

func (l *slotList) pushBack(s *Slot) {
	s.prev, s.next, s.queued = l.tail, nil, true
	if l.tail != nil {
		l.tail.next = s
	} else {
		l.head = s
	}
	l.tail = s
}

func (l *slotList) remove(s *Slot) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next, s.queued = nil, nil, false
}
