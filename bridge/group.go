package bridge

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/rs/zerolog"
)

// The retry budget of a group: over the last retryWindow, retries may be
// up to retryRatio of the requests, plus retryMin, so that a failing
// cluster gets a few retries and not a multiple of its load.
const (
	retryWindow = 10 * time.Second
	retryRatio  = 0.2
	retryMin    = 10
)

// minSlowStart is the share of its weight a backend starts slow_start
// with: enough to be tried at all.
const minSlowStart = 0.1

// memberState is a backend's state as metrics and /status show it.
type memberState int

const (
	stateUp memberState = iota
	stateDown
	stateDraining
)

var memberStateNames = [...]string{stateUp: "up", stateDown: "down", stateDraining: "draining"}

func (s memberState) String() string { return memberStateNames[s] }

// member is one backend of a group: how requests reach it, its load, and
// its health as requests (passive) and checks (active) see it.
type member struct {
	name   string // the address without options: logs, metrics, drain
	weight int
	t      cgi.Transport     // FastCGI and SCGI backends
	rt     http.RoundTripper // HTTP backends
	host   string            // HTTP backends: HOST:PORT requests go to
	cookie string            // the sticky cookie's value naming it
	busy   func() func()     // an on-demand worker pool's load count, or nil
	// limit is the requests the backend takes at once (its max_conns):
	// with every backend up at its limit, requests wait in the group's
	// queue. Zero: no limit the group knows of.
	limit int64

	inflight atomic.Int64
	draining atomic.Bool

	mu        sync.Mutex // guards the fields below
	fails     int        // failures counted since failStart
	failStart time.Time
	downUntil time.Time // passive health: down until then
	checkDown bool      // active health: down
	checkRun  int       // checks in a row with the same result, against the state
	upSince   time.Time // when it last came back: slow start counts from there
	lastCheck string    // the last check's result: "pass" or why it failed

	requests, failures, retries, checksPassed, checksFailed atomic.Uint64
}

// state returns the member's state at now. lone says that it is its
// group's lone backend (see group.lone), which its passive failures do not
// take down.
func (m *member) state(now time.Time, lone bool) memberState {
	if m.draining.Load() {
		return stateDraining
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.checkDown || (!lone && now.Before(m.downUntil)) {
		return stateDown
	}
	return stateUp
}

// group is an upstream group: several backends of one kind behind one
// mount, a request going to one of them as the policy says. It is a
// cgi.Transport (FastCGI, SCGI) and an http.RoundTripper (HTTP), so that
// the handlers in front of it are those of a single backend.
type group struct {
	prefix      string
	policy      string
	sticky      string // "", "addr", or the cookie's name
	maxFails    int
	failTimeout time.Duration
	fail5xx     bool
	idempotent  bool
	slowStart   time.Duration
	health      healthConfig
	log         zerolog.Logger
	// headLimits bound the answers' header block, as the Forwarder in
	// front of the group bounds it (see readHead).
	headLimits cgi.HeaderLimits
	// endCloses says that an answer's end is its connection closing
	// (SCGI), so that one inside the head is the connection failing; a
	// FastCGI answer ends with END_REQUEST, which inside the head is an
	// invalid answer.
	endCloses bool

	members atomic.Pointer[[]*member] // replaced whole by re-resolution
	rrMu    sync.Mutex                // guards rrCurrent
	rrCur   map[*member]int           // smooth weighted round robin's current weights
	budget  retryBudget
	queue   groupQueue
	// resolver re-resolves the backends' names (the resolve option), or
	// is nil.
	resolver *groupResolver
}

var _ cgi.Transport = (*group)(nil)

// list returns the group's backends now.
func (g *group) list() []*member { return *g.members.Load() }

// String names the group in log lines: its backends.
func (g *group) String() string {
	var b []byte
	for i, m := range g.list() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m.name...)
	}
	return string(b)
}

// usable reports whether m may take a new request at now: not draining,
// not down. lone is as for state.
func (m *member) usable(now time.Time, lone bool) bool {
	return m.state(now, lone) == stateUp
}

// lone returns the group's only backend that is not draining, or nil when
// there are several (or none). As nginx's single server of an upstream
// ("max_fails, fail_timeout and slow_start parameters are ignored, and
// such a server will never be considered unavailable"), passive health
// leaves it up: with no other backend to send requests to, marking it
// down would only make /readyz fail, and take every ferry in front of a
// shared backend out of rotation at once for one slow request. Active
// health checks, the operator's explicit signal, still take it down, as
// HAProxy's checks take down a server alone in its backend.
func (g *group) lone() *member {
	var one *member
	for _, m := range g.list() {
		if m.draining.Load() {
			continue
		}
		if one != nil {
			return nil
		}
		one = m
	}
	return one
}

// state returns m's state at now, as metrics, /status and /readyz show it.
func (g *group) state(m *member, now time.Time) memberState {
	return m.state(now, m == g.lone())
}

// full reports whether m has as many requests in flight as it takes.
func (m *member) full() bool {
	return m.limit > 0 && m.inflight.Load() >= m.limit
}

// effWeight is m's weight at now, ramped up after it came back when the
// group has a slow start.
func (g *group) effWeight(m *member, now time.Time) float64 {
	w := float64(m.weight)
	if g.slowStart <= 0 {
		return w
	}
	m.mu.Lock()
	since := m.upSince
	m.mu.Unlock()
	if since.IsZero() {
		return w
	}
	if f := float64(now.Sub(since)) / float64(g.slowStart); f < 1 {
		return w * max(f, minSlowStart)
	}
	return w
}

// load is m's requests in flight, one more, for its weight.
func (g *group) load(m *member, now time.Time) float64 {
	return float64(m.inflight.Load()+1) / g.effWeight(m, now)
}

// pick chooses a backend for a request at now, none of tried. key is the
// sticky key (REMOTE_ADDR, or the cookie's value), or "". A request with a key
// goes to the backend it names while that one is up, however busy (its own
// queue holds it). The others go to a backend up with room (see
// member.limit); when every backend up is at its limit, pick returns nil
// and full: the request waits in the group's queue. When every backend
// left is down, it picks among those anyway (not the draining ones): with
// all of them marked down, trying one is better than refusing everything,
// as nginx does for a group of one. nil without full: none is left.
func (g *group) pick(tried []*member, key string, now time.Time) (m *member, full bool) {
	all := g.list()
	lone := g.lone()
	var buf [8]*member
	up := buf[:0]
	for _, m := range all {
		if m.usable(now, m == lone) && !slices.Contains(tried, m) {
			up = append(up, m)
		}
	}
	if len(up) == 0 {
		for _, m := range all {
			if !m.draining.Load() && !slices.Contains(tried, m) {
				up = append(up, m)
			}
		}
		if len(up) == 0 {
			return nil, false
		}
		return g.choose(up, now), false
	}
	if key != "" {
		if g.sticky == "addr" {
			return rendezvous(up, key), false
		}
		for _, m := range up {
			if m.cookie == key {
				return m, false
			}
		}
	}
	room := up[:0] // filtered in place
	for _, m := range up {
		if !m.full() {
			room = append(room, m)
		}
	}
	if len(room) == 0 {
		return nil, true
	}
	return g.choose(room, now), false
}

// choose picks one of cands as the policy says.
func (g *group) choose(cands []*member, now time.Time) *member {
	if len(cands) == 1 {
		return cands[0]
	}
	switch g.policy {
	case "round_robin":
		return g.roundRobin(cands, now)
	case "random_two":
		i := rand.IntN(len(cands))
		j := rand.IntN(len(cands) - 1)
		if j >= i {
			j++
		}
		if g.load(cands[j], now) < g.load(cands[i], now) {
			return cands[j]
		}
		return cands[i]
	}
	// least_busy: the fewest in flight for the weight; ties go to a random
	// one among them, so that an idle group spreads its requests.
	best, n := cands[0], 1
	bestLoad := g.load(best, now)
	for _, m := range cands[1:] {
		l := g.load(m, now)
		switch {
		case l < bestLoad:
			best, bestLoad, n = m, l, 1
		case l == bestLoad:
			n++
			if rand.IntN(n) == 0 {
				best = m
			}
		}
	}
	return best
}

// roundRobin is nginx's smooth weighted round robin over cands.
func (g *group) roundRobin(cands []*member, now time.Time) *member {
	g.rrMu.Lock()
	defer g.rrMu.Unlock()
	if g.rrCur == nil {
		g.rrCur = make(map[*member]int)
	}
	var best *member
	total := 0
	for _, m := range cands {
		w := max(int(g.effWeight(m, now)*100), 1)
		total += w
		g.rrCur[m] += w
		if best == nil || g.rrCur[m] > g.rrCur[best] {
			best = m
		}
	}
	g.rrCur[best] -= total
	return best
}

// rendezvous picks the backend with the highest hash of key and its name:
// a client keeps its backend while that one is up, and only the clients
// of a backend that goes move.
func rendezvous(cands []*member, key string) *member {
	var best *member
	var bestH uint64
	for _, m := range cands {
		h := fnv.New64a()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(m.name))
		if v := h.Sum64(); best == nil || v > bestH {
			best, bestH = m, v
		}
	}
	return best
}

// cookieValue is the sticky cookie's value for a backend: a hash of its
// address, so that the cookie does not tell clients the addresses.
func cookieValue(name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	const hex = "0123456789abcdef"
	v := h.Sum64()
	b := make([]byte, 16)
	for i := range b {
		b[15-i] = hex[v&15]
		v >>= 4
	}
	return string(b)
}

// release ends a request's count on m, and hands its room to the request
// first in the group's queue.
func (g *group) release(m *member) {
	m.inflight.Add(-1)
	if m.limit > 0 && g.queue.waiting.Load() > 0 {
		g.queue.wake()
	}
}

// failed counts a failure of m at now: max_fails of them within
// fail_timeout mark it down for fail_timeout, unless it is the group's
// lone backend (see lone).
func (g *group) failed(m *member, err error) {
	m.failures.Add(1)
	if g.maxFails == 0 || m == g.lone() {
		return
	}
	now := time.Now()
	m.mu.Lock()
	if now.Sub(m.failStart) > g.failTimeout {
		m.fails, m.failStart = 0, now
	}
	m.fails++
	down := m.fails >= g.maxFails && !now.Before(m.downUntil)
	if down {
		m.downUntil = now.Add(g.failTimeout)
		m.upSince = m.downUntil
		m.fails = 0
	}
	m.mu.Unlock()
	if down {
		g.log.Warn().Err(err).Str("mount", g.prefix).Str("backend", m.name).Dur("for", g.failTimeout).Msg("ferry: backend down after failures")
	}
}

// countsAsFailure reports whether err, from a backend, counts against it:
// a connection refused or broken, OVERLOADED, no answer in time. Not the
// client going away, nor a request refused before it was sent (413).
func countsAsFailure(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	switch cgi.StatusOf(err) {
	case http.StatusBadGateway, http.StatusGatewayTimeout:
		return true
	case http.StatusServiceUnavailable:
		return errors.Is(err, fastcgi.ErrOverloaded)
	}
	return false
}

// retryable reports whether a request that failed with err may go to
// another backend: it cannot have run (not sent, refused, overloaded) and
// its body was not read, or it is safe to repeat and the connection broke
// or timed out before the answer's head was whole (see headBroke).
// bodyRead is false for a body read but kept whole, to send again (see
// touchedBody).
func retryable(err error, bodyRead, safe bool) bool {
	if bodyRead {
		return false
	}
	if errors.Is(err, cgi.ErrNotSent) || errors.Is(err, fastcgi.ErrOverloaded) {
		return true
	}
	return safe && (errors.Is(err, cgi.ErrNoAnswer) || headBroke(err))
}

// headBroke reports whether err, reading an answer before its head was
// whole, is the connection failing (closed, reset) or read_timeout
// passing: nginx's "error" and "timeout", which its default
// fastcgi_next_upstream, scgi_next_upstream and proxy_next_upstream send
// to the next backend. Not an answer that makes no sense (nginx's
// invalid_header, left out of that default), nor a broken protocol, such
// as a FastCGI record of another request, which are errors of their own.
func headBroke(err error) bool {
	var oe *net.OpError
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errClosedInHead) ||
		errors.Is(err, fastcgi.ErrNoEndRequest) || errors.As(err, &oe)
}

// errClosedInHead is the failure of a backend that closed its connection
// inside its answer's head, nginx's "upstream prematurely closed
// connection while reading response header from upstream": where the
// connection's end is the answer's end (SCGI, HTTP), the part that came
// would be taken for a malformed answer.
var errClosedInHead = errors.New("bridge: the backend closed the connection inside its answer's head")

// RoundTrip sends req to a backend the policy picks, and to another when
// it fails in a way that allows (see retryable), within the retry budget.
// A request that may go on once sent (safe, no body) has its answer's
// head read here (see readHead) while another backend could take it: a
// connection that breaks or times out inside the head is then such a
// failure, as to nginx, and not a 502 or 504 from the Forwarder.
func (g *group) RoundTrip(ctx context.Context, req *cgi.AppRequest) (*cgi.AppResponse, error) {
	t := g.newTries(ctx)
	var buf [4]*member
	tried := buf[:0]
	body := req.Body
	// A request that may go on once sent: its method allows it (see
	// safeMethod), and its body, if any, is short enough to keep.
	safe := req.ContentLength <= maxReplayBody && g.safe(req.Params)
	var tb *touchedBody
	if body != nil {
		tb = &touchedBody{r: body}
		if safe && len(g.list()) > 1 { // another backend could take it
			tb.keepFor(req.ContentLength)
		}
		req.Body = tb
		defer func() { req.Body = body }()
	}
	for {
		m, err := t.next(tried)
		if err != nil {
			return nil, err
		}
		tried = append(tried, m)
		var idle func()
		if m.busy != nil {
			idle = m.busy()
		}
		resp, err := m.t.RoundTrip(ctx, req)
		var head *[]byte
		if err == nil && safe && len(tried) < len(g.list()) {
			// Another backend could take it: read the head here, where a
			// failure can still send the request on (nothing has gone to
			// the client).
			if head, err = g.readHead(m, resp.Body); err != nil {
				resp.Body.Close()
			}
		}
		if err == nil {
			t.aff.chose(g, m)
			gb := &groupBody{ReadCloser: resp.Body, g: g, m: m, idle: idle, ctx: ctx, aff: t.aff}
			if head != nil && len(*head) > 0 {
				gb.headBuf, gb.head = head, *head
			} else if head != nil {
				putHead(head) // an answer that ended at once: nothing to give back
			}
			gb.app = *resp
			gb.app.Body = gb
			return &gb.app, nil
		}
		if idle != nil {
			idle()
		}
		bodyRead := tb != nil && tb.touched.Load()
		var again *touchedBody // the body once more, when the try read it
		if bodyRead {
			again = tb.replay()
			bodyRead = again == nil
		}
		if !t.failed(m, err, countsAsFailure(ctx, err), retryable(err, bodyRead, safe)) {
			return nil, err
		}
		if again != nil {
			tb = again
			req.Body = tb
		}
	}
}

// headPool holds the buffers answers' heads are read ahead into.
var headPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// readHead reads the head of m's answer body ahead, through the blank
// line that ends it (cgi.HeaderLimits.HeadEnd, as the Forwarder will read
// it), into a buffer from headPool. It returns the buffer, holding what
// was read (some of the body, maybe), or why the head did not come whole:
// read_timeout, the connection failing or, for SCGI, closing
// (errClosedInHead). A head that ends the answer (a FastCGI END_REQUEST
// inside it) or outgrows the limits is returned as it is, for the
// Forwarder to refuse as malformed, which counts it once (see
// groupBody.Failed), and does not send the request on, as nginx does for
// an invalid header.
func (g *group) readHead(m *member, body io.Reader) (*[]byte, error) {
	bp := headPool.Get().(*[]byte)
	buf := (*bp)[:0]
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, len(buf))
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		end, over := g.headLimits.HeadEnd(buf)
		if end > 0 {
			*bp = buf
			return bp, nil // whole
		}
		switch {
		case over:
			err = nil // too long: the Forwarder refuses it
		case err == io.EOF && g.endCloses:
			err = fmt.Errorf("%w (%s, after %d bytes)", errClosedInHead, m.name, len(buf))
		case err == nil:
			continue
		case err == io.EOF:
			err = nil // the answer ended in its head: the Forwarder refuses it
		}
		*bp = buf
		if err != nil {
			putHead(bp)
			return nil, err
		}
		return bp, nil
	}
}

// putHead gives a head's buffer back to headPool, unless it grew past the
// bound of a common head.
func putHead(bp *[]byte) {
	if cap(*bp) <= 16<<10 {
		*bp = (*bp)[:0]
		headPool.Put(bp)
	}
}

// tries is one request's tries at the backends of a group: the FastCGI
// and SCGI transport's (group.RoundTrip) and the HTTP one's
// (httpGroup.RoundTrip).
type tries struct {
	g       *group
	ctx     context.Context
	aff     *affinity
	key     string    // the sticky key, or ""
	now     time.Time // when the request came: one clock reading for the first try
	lastErr error     // the last try's, once one failed
}

// newTries counts a request against the retry budget and starts its
// tries.
func (g *group) newTries(ctx context.Context) tries {
	t := tries{g: g, ctx: ctx, aff: g.affinity(ctx), now: time.Now()}
	t.key = t.aff.key()
	g.budget.request(t.now)
	return t
}

// next returns the backend the next try goes to, none of tried, counted
// as serving it, or why there is none: the last try's error once every
// backend was tried. (tried is the caller's, on its stack while it fits.)
func (t *tries) next(tried []*member) (*member, error) {
	if len(tried) > 0 {
		t.now = time.Now()
	}
	m, err := t.g.next(t.ctx, tried, t.key, t.now)
	if err != nil {
		if t.lastErr != nil && errors.Is(err, errNoBackend) {
			return nil, t.lastErr // every backend tried
		}
		return nil, err
	}
	if len(tried) > 0 {
		m.retries.Add(1)
	}
	m.requests.Add(1)
	m.inflight.Add(1)
	return m, nil
}

// failed ends a try of m that failed with err: counts says whether the
// failure counts against m (max_fails), retry whether the request may go
// to another backend. It reports whether it may, within the budget.
func (t *tries) failed(m *member, err error, counts, retry bool) bool {
	t.g.release(m)
	if counts {
		t.aff.failed()
		t.g.failed(m, err)
	}
	if t.ctx.Err() != nil || !retry || (!refused(err) && !t.g.budget.retry()) {
		return false
	}
	t.lastErr = err
	// As nginx logs each failed try at error ("... while reading response
	// header from upstream"), before the next upstream answers: a backend
	// that fails now and then shows in the log before it is marked down.
	cgi.LoggerFrom(t.ctx, &t.g.log).Warn().Err(err).Str("mount", t.g.prefix).Str("backend", m.name).Msg("ferry: backend failed; trying another")
	return true
}

// refused reports whether err is a backend refusing the connection (no
// listener on its port or socket): a retry of such a request is not
// counted against the retry budget. The budget keeps a failing cluster
// from getting more requests than it was sent; a refusal cost the backend
// nothing, and its request goes to another one as a load balancer's would,
// as nginx's next upstream does for "error" with no bound but the
// backends'. Counted, the retries of a total outage, which all failed,
// spent the budget for the next 10 s: a request whose pick was still down
// once another backend was back got 502.
func refused(err error) bool {
	return isDialError(err) && (errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT))
}

// next returns the backend a request goes to, none of tried: the one
// pick chooses, or, when every backend up is at its limit, the first to
// have room while the request waits in the group's queue. It fails
// (marked cgi.ErrNotSent) when no backend is left, or none had room in
// time.
func (g *group) next(ctx context.Context, tried []*member, key string, now time.Time) (*member, error) {
	var m *member
	full := key == "" && g.queue.waiting.Load() > 0 // first come, first served
	if !full {
		m, full = g.pick(tried, key, now)
	}
	if full {
		var err error
		if m, err = g.wait(ctx, tried, key); err != nil {
			return nil, cgi.NotSent(err)
		}
	}
	if m == nil {
		return nil, cgi.NotSent(errNoBackend)
	}
	return m, nil
}

// errNoBackend is the failure of a group whose backends are all draining,
// or whose names resolved to nothing yet.
var errNoBackend = errors.New("bridge: no backend of the group takes requests (all draining, or none resolved)")

// safe reports whether a request with these meta-variables may be
// repeated (see safeMethod).
func (g *group) safe(params []string) bool {
	for _, kv := range params {
		if len(kv) > 15 && kv[:15] == "REQUEST_METHOD=" {
			return g.safeMethod(kv[15:])
		}
	}
	return false
}

// safeMethod reports whether a request of method may be repeated once a
// backend may have run it: any method but POST, PATCH and LOCK, as nginx
// (since 1.9.13) sends on to the next upstream, or any method on an
// idempotent mount (nginx's non_idempotent). The caller checks that its
// body, if any, is one a group keeps to send again (maxReplayBody).
func (g *group) safeMethod(method string) bool {
	return g.idempotent || method != http.MethodPost && method != http.MethodPatch && method != "LOCK"
}

// groupBody is a backend's response: closing it ends the request's count
// on the backend.
type groupBody struct {
	io.ReadCloser
	g      *group
	m      *member
	idle   func()
	ctx    context.Context // the request's
	aff    *affinity
	app    cgi.AppResponse
	closed bool
	// head is the part of the answer read ahead (see group.readHead) that
	// the caller has yet to read, in headBuf, which goes back to headPool
	// once it is read: never empty while headBuf is set, so that Read
	// never returns 0 bytes and no error. Both nil when the answer was not
	// read ahead, or is read.
	head    []byte
	headBuf *[]byte
}

// Read reads what was read ahead first, then the backend's body.
func (b *groupBody) Read(p []byte) (int, error) {
	if b.headBuf == nil {
		return b.ReadCloser.Read(p)
	}
	n := copy(p, b.head)
	b.head = b.head[n:]
	if len(b.head) == 0 {
		putHead(b.headBuf)
		b.head, b.headBuf = nil, nil
	}
	return n, nil
}

// Failed counts an answer whose header block the Forwarder could not read
// (see [cgi.AppResponse]) against its backend, whatever fail_on_5xx says:
// nginx counts an invalid header (as an error or a timeout) toward
// max_fails always. The request is not sent to another backend, which
// nginx's default fastcgi_next_upstream and scgi_next_upstream ("error
// timeout") leave out for an invalid header: the backend may have run it.
func (b *groupBody) Failed(err error) {
	if countsAsFailure(b.ctx, err) {
		b.aff.failed() // the 502 is not counted again (fail_on_5xx)
		b.g.failed(b.m, err)
	}
}

// Ready is the backend body's own Ready (see [cgi.AppResponse]): without
// it, the Forwarder would flush a response that came whole before reading
// its end, and send it in two writes, chunked. A body with no Ready method
// reports false, which flushes as a nil Ready does.
func (b *groupBody) Ready() bool {
	if len(b.head) > 0 {
		return true
	}
	rb, ok := b.ReadCloser.(interface{ Ready() bool })
	return ok && rb.Ready()
}

func (b *groupBody) Close() error {
	if !b.closed {
		b.closed = true
		if b.headBuf != nil {
			putHead(b.headBuf)
			b.head, b.headBuf = nil, nil
		}
		b.g.release(b.m)
		if b.idle != nil {
			b.idle()
		}
	}
	return b.ReadCloser.Close()
}

// maxReplayBody is the longest request body a group keeps to send again
// to the next backend (see replayBody): nginx keeps every body it passes
// on (client_body_buffer_size in memory, 16 KiB on 64-bit, a temporary
// file past it); ferry streams bodies, and keeps a copy of a short one as
// it goes.
const maxReplayBody = 64 << 10

// touchedBody is a request body as a group's try reads it. It notes
// whether any of it was read, and, when it keeps (a body that may be sent
// again), a copy of what was read: once all of a body of size bytes has
// been read, replay gives it again for the next try. A transport may
// still read a body after its RoundTrip returned, from its own goroutine:
// mu orders that with replay.
type touchedBody struct {
	r       io.Reader
	touched atomic.Bool

	size  int64 // the length of a body kept (set before the first Read); 0: not kept
	mu    sync.Mutex
	kept  []byte // what was read, while keeping
	whole bool   // kept is all size bytes: the body can go again
}

// keepFor makes b keep a copy of a body of size bytes as it is read, if
// it is at most maxReplayBody bytes long.
func (b *touchedBody) keepFor(size int64) {
	if size > 0 && size <= maxReplayBody {
		b.size = size
	}
}

func (b *touchedBody) Read(p []byte) (int, error) {
	b.touched.Store(true)
	n, err := b.r.Read(p)
	if b.size > 0 && n > 0 {
		b.mu.Lock()
		if !b.whole && int64(len(b.kept)+n) <= b.size {
			b.kept = append(b.kept, p[:n]...)
			b.whole = int64(len(b.kept)) == b.size
		}
		b.mu.Unlock()
	}
	return n, err
}

// replay returns a new touchedBody that reads the whole body again, and
// keeps it for another try, or nil when b did not keep all of it (too
// long, not read to its end, or not kept).
func (b *touchedBody) replay() *touchedBody {
	if b.size == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.whole {
		return nil
	}
	// kept is complete: no Read appends to it again, so the next try
	// shares it.
	return &touchedBody{r: bytes.NewReader(b.kept), size: b.size, kept: b.kept, whole: true}
}

// retryBudget bounds a group's retries: over the last retryWindow, at most
// retryRatio of its requests plus retryMin. Retries after a refused
// connection are not counted (see refused).
type retryBudget struct {
	mu      sync.Mutex // guards the buckets
	buckets [10]budgetBucket
}

// budgetBucket counts one second's requests and retries.
type budgetBucket struct {
	sec               int64
	requests, retries int
}

// bucket returns the current second's bucket. b.mu is held.
func (b *retryBudget) bucket(now time.Time) *budgetBucket {
	sec := now.Unix()
	bk := &b.buckets[sec%int64(len(b.buckets))]
	if bk.sec != sec {
		*bk = budgetBucket{sec: sec}
	}
	return bk
}

// request counts a request at now.
func (b *retryBudget) request(now time.Time) {
	b.mu.Lock()
	b.bucket(now).requests++
	b.mu.Unlock()
}

// retry reports whether a retry fits the budget, and counts it if so.
func (b *retryBudget) retry() bool {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	oldest := now.Unix() - int64(len(b.buckets)) + 1
	requests, retries := 0, 0
	for _, bk := range b.buckets {
		if bk.sec >= oldest {
			requests += bk.requests
			retries += bk.retries
		}
	}
	if float64(retries) >= float64(requests)*retryRatio+retryMin {
		return false
	}
	b.bucket(now).retries++
	return true
}
