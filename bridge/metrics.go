package bridge

import (
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/spawn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Buckets of the histograms, in seconds: requests run from a millisecond
// (a FastCGI answer) to a minute (a CGI script's default timeout).
var (
	requestBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}
	spawnBuckets   = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1}
)

// Label names: every per-mount series carries the mount's prefix and its
// backend's address (without options).
var mountLabels = []string{"mount", "backend"}

// statusClasses are the values of the class label, indexed by status/100;
// "aborted" is a response cut off before any status was sent.
var statusClasses = [...]string{"aborted", "1xx", "2xx", "3xx", "4xx", "5xx"}

// killReasons are the values of ferry_cgi_scripts_killed_total's reason
// label, indexed by cgi.StopCause (NotStopped has none).
var killReasons = [...]string{cgi.StoppedTimeout: "timeout", cgi.StoppedClientGone: "client_abort", cgi.StoppedBadResponse: "bad_response"}

// serverStats holds what the admin listener reports: a Prometheus registry
// of the Server's own (never the global one), and each mount's figures.
type serverStats struct {
	start   time.Time
	version string
	reg     *prometheus.Registry
	// inForce is the admin of the configuration in force, whose mounts
	// the gauges report.
	inForce atomic.Pointer[admin]

	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	firstByte *prometheus.HistogramVec
	bytesIn   *prometheus.CounterVec
	bytesOut  *prometheus.CounterVec
	queueWait *prometheus.HistogramVec
	failures  *prometheus.CounterVec
	started   *prometheus.CounterVec
	spawn     *prometheus.HistogramVec
	killed    *prometheus.CounterVec
	exits     *prometheus.CounterVec
	restarts  *prometheus.CounterVec
	badHeads  *prometheus.CounterVec
}

func newServerStats(version string) *serverStats {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, append(mountLabels, labels...))
	}
	histogram := func(name, help string, buckets []float64) *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, mountLabels)
	}
	s := &serverStats{
		start:     time.Now(),
		version:   version,
		reg:       prometheus.NewRegistry(),
		requests:  counter("ferry_requests_total", "Requests a mount answered, by status class (aborted: cut off before a status).", "class"),
		duration:  histogram("ferry_request_duration_seconds", "Time from a request reaching its mount to the end of its response.", requestBuckets),
		firstByte: histogram("ferry_response_first_byte_seconds", "Time from a request reaching its mount to the start of its response.", requestBuckets),
		bytesIn:   counter("ferry_request_bytes_total", "Request body bytes received (Content-Length, or as read for chunked bodies)."),
		bytesOut:  counter("ferry_response_bytes_total", "Response body bytes sent."),
		queueWait: histogram("ferry_queue_wait_seconds", "Time requests that found every script slot or backend connection taken waited for one.", requestBuckets),
		failures:  counter("ferry_gateway_errors_total", "Requests ferry answered 502, 503 or 504 itself, by status and cause.", "status", "cause"),
		started:   counter("ferry_cgi_scripts_started_total", "CGI script processes started."),
		spawn:     histogram("ferry_cgi_spawn_seconds", "Time starting a CGI script process took (fork and exec).", spawnBuckets),
		killed:    counter("ferry_cgi_scripts_killed_total", "CGI scripts ferry stopped before they exited, by reason.", "reason"),
		exits:     counter("ferry_cgi_script_exits_total", "CGI scripts reaped, by exit code or the signal that ended them.", "code"),
		badHeads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ferry_http_bad_requests_total",
			Help: "Requests whose head failed on an http:// or https:// front (HTTP/1.1), before any mount: refused (400, 414, 431, 501, 505), timed out (408) or cut off by the client (400), by status."}, []string{"status"}),
		restarts: counter("ferry_pool_worker_restarts_total", "Workers of a pool that ended, by reason (crash, max_requests and scale-down while it runs; stop with the pool; reload when a reload replaced or removed the pool).", "reason"),
	}
	s.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.requests, s.duration, s.firstByte, s.bytesIn, s.bytesOut, s.queueWait, s.failures,
		s.started, s.spawn, s.killed, s.exits, s.restarts, s.badHeads,
		stateCollector{s}, groupCollector{s},
	)
	return s
}

// badHead counts a request whose head failed on an HTTP front; s may be
// nil (no admin listener).
func (s *serverStats) badHead(status int) {
	if s != nil {
		s.badHeads.WithLabelValues(strconv.Itoa(status)).Inc()
	}
}

// forgetMounts removes from the metrics the series of the mounts of old,
// a configuration a reload replaced, that cur, the one in force, has not
// (the same prefix and backend): a removed mount's counters stop being
// exported, as its /status entry did at the switch. Nothing happens if
// the two do not share their figures (the admin listener was removed or
// added). Called once old's requests are over, with the runner's lock
// held so that cur stays in force meanwhile.
func forgetMounts(old, cur *Server) {
	st := old.adminStats()
	if st == nil || cur.adminStats() != st {
		return
	}
	for _, m := range old.admin.mounts {
		if slices.ContainsFunc(cur.admin.mounts, func(n *mountStats) bool { return n.prefix == m.prefix && n.backend == m.backend }) {
			continue
		}
		l := prometheus.Labels{"mount": m.prefix, "backend": m.backend}
		for _, v := range []interface {
			DeletePartialMatch(prometheus.Labels) int
		}{st.requests, st.duration, st.firstByte, st.bytesIn, st.bytesOut, st.queueWait, st.failures,
			st.started, st.spawn, st.killed, st.exits, st.restarts} {
			v.DeletePartialMatch(l)
		}
	}
}

// mountStats are one mount's figures: the metrics its requests update,
// the requests in progress, and the peaks the status page reports.
type mountStats struct {
	server  *serverStats
	prefix  string
	backend string // the address without its options
	kind    string // the backend kind's first scheme: "cgi", "fastcgi+exec", ...
	addr    Address

	classes   [len(statusClasses)]prometheus.Counter
	duration  prometheus.Observer
	firstByte prometheus.Observer
	queueWait prometheus.Observer
	bytesIn   prometheus.Counter
	bytesOut  prometheus.Counter
	failures  *prometheus.CounterVec // curried with the mount's labels
	cgi       *cgiStats              // for cgi: mounts
	pool      *poolStats             // for mounts of workers ferry runs: fastcgi+exec:, wsgi:, psgi:, cgi:DIR?persist=
	client    *fastcgi.Client        // for fastcgi mounts
	group     *group                 // for a mount of an upstream group

	waiting    atomic.Int64  // requests in the queue now
	maxReached atomic.Uint64 // requests that found every slot taken

	mu        sync.Mutex  // guards the fields below
	live      liveRequest // the sentinel of the ring of requests in progress
	accepted  uint64
	active    int
	maxActive int
	maxQueue  int

	ready readiness
}

// cgiStats are a cgi: mount's figures.
type cgiStats struct {
	started prometheus.Counter
	spawn   prometheus.Observer
	killed  [len(killReasons)]prometheus.Counter
	exits   *prometheus.CounterVec // curried with the mount's labels
	running atomic.Int64
	count   atomic.Uint64 // scripts started, for the status page
}

// exitReload is why the workers of a pool a reload replaced or removed
// ended, as the metrics and the status page count them: spawn says
// [spawn.WorkerStopped], stopped with the pool.
const exitReload = spawn.WorkerStopped + 1

// exitName names why a worker ended, as the reason label does.
func exitName(why spawn.WorkerExit) string {
	if why == exitReload {
		return "reload"
	}
	return why.String()
}

// poolStats are a worker pool's figures. They go with the pool: a reload
// that keeps the pool keeps them ([Server.addPool]).
type poolStats struct {
	pool     *spawn.Pool
	inFlight func() int // the requests holding a connection to the workers now
	server   *serverStats
	prefix   string // the mount's, which labels restarts
	restarts [exitReload + 1]prometheus.Counter
	counts   [exitReload + 1]atomic.Uint64 // the same, for the status page
	// reloaded is set once a reload has replaced or removed the pool: its
	// workers stopped from then on count as exitReload.
	reloaded atomic.Bool
	mu       sync.Mutex        // guards started
	started  map[int]time.Time // live workers' start times by pid
}

// newMount returns the figures of mount m, registered with s. Its
// counters are those of any mount before it with the same prefix and
// backend (in a configuration a reload replaced). It returns nil when s
// is nil: a Server without an admin listener keeps none.
func (s *serverStats) newMount(m Mount) *mountStats {
	if s == nil {
		return nil
	}
	backend, _, _ := strings.Cut(m.Backend.String(), "?")
	if m.isGroup() {
		backend = m.backendList()
	}
	ms := &mountStats{server: s, prefix: m.Prefix, backend: backend, addr: m.Backend}
	if k, ok := backendFor(m.Backend.Scheme); ok {
		ms.kind = k.Schemes[0]
	}
	ms.live.next, ms.live.prev = &ms.live, &ms.live
	for i, c := range statusClasses {
		ms.classes[i] = s.requests.WithLabelValues(m.Prefix, backend, c)
	}
	ms.duration = s.duration.WithLabelValues(m.Prefix, backend)
	ms.firstByte = s.firstByte.WithLabelValues(m.Prefix, backend)
	ms.queueWait = s.queueWait.WithLabelValues(m.Prefix, backend)
	ms.bytesIn = s.bytesIn.WithLabelValues(m.Prefix, backend)
	ms.bytesOut = s.bytesOut.WithLabelValues(m.Prefix, backend)
	labels := prometheus.Labels{"mount": m.Prefix, "backend": backend}
	ms.failures = s.failures.MustCurryWith(labels)
	if ms.kind == "cgi" {
		cs := &cgiStats{
			started: s.started.WithLabelValues(m.Prefix, backend),
			spawn:   s.spawn.WithLabelValues(m.Prefix, backend),
			exits:   s.exits.MustCurryWith(labels),
		}
		for i, r := range killReasons {
			if r != "" {
				cs.killed[i] = s.killed.WithLabelValues(m.Prefix, backend, r)
			}
		}
		ms.cgi = cs
	}
	return ms
}

// watchPool returns the figures of p, the worker pool of the mount, of
// which those inFlight counts are busy, and has p tell them of its
// workers' starts and exits: it must be called before p starts. It
// returns nil without an admin listener.
func (m *mountStats) watchPool(p *spawn.Pool, inFlight func() int) *poolStats {
	if m == nil {
		return nil
	}
	ps := &poolStats{pool: p, inFlight: inFlight, server: m.server, prefix: m.prefix, started: make(map[int]time.Time)}
	for why := range ps.restarts {
		ps.restarts[why] = m.server.restarts.WithLabelValues(m.prefix, m.backend, exitName(spawn.WorkerExit(why)))
	}
	p.Observer = spawn.PoolObserver{WorkerStarted: ps.workerStarted, WorkerExited: ps.workerExited}
	return ps
}

// watchFastCGI makes the mount report c's connections and, for a
// fastcgi+exec: mount (or cgi:DIR?persist=php), the workers of the pool
// ps watches (nil otherwise).
func (m *mountStats) watchFastCGI(c *fastcgi.Client, ps *poolStats) {
	if m == nil {
		return
	}
	m.client, m.pool = c, ps
}

// showPool makes the mount report the workers of the pool ps watches,
// and its readiness theirs.
func (m *mountStats) showPool(ps *poolStats) {
	if m == nil {
		return
	}
	m.pool = ps
}

func (ps *poolStats) workerStarted(pid int) {
	ps.mu.Lock()
	ps.started[pid] = time.Now()
	ps.mu.Unlock()
}

func (ps *poolStats) workerExited(pid int, why spawn.WorkerExit, _ time.Duration) {
	ps.mu.Lock()
	delete(ps.started, pid)
	ps.mu.Unlock()
	if why == spawn.WorkerStopped && ps.reloaded.Load() {
		why = exitReload
	}
	ps.restarts[why].Inc()
	ps.counts[why].Add(1)
}

// workers returns the pool's running, busy and starting worker counts: a
// worker is busy while a request of the mount holds its connection.
func (ps *poolStats) workers() (st spawn.PoolStats, busy int) {
	st = ps.pool.Stats()
	busy = min(ps.inFlight(), st.Running)
	return st, busy
}

// wrap returns next, counting each request in the mount's figures and
// listing it as in progress while it runs. A nil m (no admin listener)
// returns next itself: the hot path pays nothing.
func (m *mountStats) wrap(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := infoFrom(r.Context())
		lw, ok := w.(*logWriter)
		if info == nil || !ok || info.mount != nil {
			// Outside Server.Handler, or a local redirect (RFC 3875
			// § 6.2.2) of a request its first mount counts.
			next.ServeHTTP(w, r)
			return
		}
		in := r.ContentLength
		var body *countingBody
		if in < 0 && r.Body != nil {
			// A chunked body: counted as the handler reads it.
			body = &countingBody{ReadCloser: r.Body}
			r2 := *r
			r2.Body = body
			r = &r2
		}
		l := &info.liveRequest
		m.begin(l, r)
		defer func() {
			p := recover()
			m.end(l, lw, in, body, p != nil)
			if p != nil {
				panic(p) // the access log and net/http deal with it
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// begin counts r as accepted and in progress. Its durations count from
// l.start, when the access log took the request.
func (m *mountStats) begin(l *liveRequest, r *http.Request) {
	l.mount, l.method, l.uri = m, r.Method, r.RequestURI
	if l.uri == "" {
		l.uri = r.URL.RequestURI()
	}
	m.mu.Lock()
	m.accepted++
	m.active++
	m.maxActive = max(m.maxActive, m.active)
	l.prev, l.next = m.live.prev, &m.live
	m.live.prev.next = l
	m.live.prev = l
	m.mu.Unlock()
}

// end takes the request off the list of those in progress and records its
// status, timings and sizes. in is the request's Content-Length, unless
// body counted it.
func (m *mountStats) end(l *liveRequest, lw *logWriter, in int64, body *countingBody, aborted bool) {
	now := time.Now()
	m.mu.Lock()
	l.prev.next, l.next.prev = l.next, l.prev
	l.prev, l.next = nil, nil
	m.active--
	m.mu.Unlock()

	class := lw.status / 100
	switch {
	case lw.status == 0 && aborted, lw.unanswered():
		class = 0 // the client got no status
	case lw.status == 0:
		class = 2 // net/http answers 200 for a handler that wrote nothing
	case class >= len(statusClasses):
		class = 0
	}
	m.classes[class].Inc()
	d := now.Sub(l.start)
	m.duration.Observe(d.Seconds())
	if !lw.started.IsZero() {
		d = max(0, lw.started.Sub(l.start))
	}
	m.firstByte.Observe(d.Seconds())
	if body != nil {
		in = body.n
	}
	if in > 0 {
		m.bytesIn.Add(float64(in))
	}
	if lw.bytes > 0 {
		m.bytesOut.Add(float64(lw.bytes))
	}
}

// countingBody counts the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// stateCollector reports, at each scrape, what the mounts of the
// configuration in force hold now: requests in progress and queued,
// scripts running, pool workers by state, FastCGI client connections.
type stateCollector struct{ s *serverStats }

var (
	inFlightDesc     = prometheus.NewDesc("ferry_requests_in_flight", "Requests a mount is serving now, queued ones included.", mountLabels, nil)
	queueDesc        = prometheus.NewDesc("ferry_queue_length", "Requests waiting now for a script slot or a backend connection.", mountLabels, nil)
	scriptsDesc      = prometheus.NewDesc("ferry_cgi_scripts_running", "CGI script processes running now.", mountLabels, nil)
	workersDesc      = prometheus.NewDesc("ferry_pool_workers", "Workers of a pool now, by state (a worker is busy while a request holds its connection; starting: being started or waiting out a restart delay).", append(mountLabels, "state"), nil)
	workersMaxDesc   = prometheus.NewDesc("ferry_pool_workers_max", "The most workers a pool runs.", mountLabels, nil)
	maxReachedDesc   = prometheus.NewDesc("ferry_pool_max_workers_reached_total", "Requests that found every worker of a pool busy and waited (php-fpm's max children reached).", mountLabels, nil)
	connectionsDesc  = prometheus.NewDesc("ferry_fastcgi_client_connections", "Connections of a mount's FastCGI client now, by state (active: carrying a request; idle: kept for the next).", append(mountLabels, "state"), nil)
	multiplexingDesc = prometheus.NewDesc("ferry_fastcgi_client_multiplexed_requests", "Requests in progress now that share a FastCGI connection (request-ID multiplexing).", mountLabels, nil)
)

// Describe implements prometheus.Collector.
func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{inFlightDesc, queueDesc, scriptsDesc, workersDesc, workersMaxDesc, maxReachedDesc, connectionsDesc, multiplexingDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	a := c.s.inForce.Load()
	if a == nil {
		return
	}
	for _, m := range a.mounts {
		m.mu.Lock()
		active := m.active
		m.mu.Unlock()
		gauge(inFlightDesc, active, m.prefix, m.backend)
		gauge(queueDesc, int(m.waiting.Load()), m.prefix, m.backend)
		if m.cgi != nil {
			gauge(scriptsDesc, int(m.cgi.running.Load()), m.prefix, m.backend)
		}
		if m.pool != nil {
			st, busy := m.pool.workers()
			gauge(workersDesc, st.Running-busy, m.prefix, m.backend, "idle")
			gauge(workersDesc, busy, m.prefix, m.backend, "busy")
			gauge(workersDesc, st.Starting, m.prefix, m.backend, "starting")
			gauge(workersMaxDesc, st.Max, m.prefix, m.backend)
			ch <- prometheus.MustNewConstMetric(maxReachedDesc, prometheus.CounterValue, float64(m.maxReached.Load()), m.prefix, m.backend)
		}
		if m.client != nil {
			st := m.client.Stats()
			gauge(connectionsDesc, st.Active, m.prefix, m.backend, "active")
			gauge(connectionsDesc, st.Idle, m.prefix, m.backend, "idle")
			gauge(multiplexingDesc, st.Multiplexed, m.prefix, m.backend)
		}
	}
}
