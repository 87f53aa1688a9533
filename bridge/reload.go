package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/fastcgi"
	"github.com/rs/zerolog"
)

// Reload applies cfg to the running server, as SIGHUP does to ferry serve.
// Nothing a request needs is closed under it:
//
//   - fronts that stay (the same endpoint: host and port, socket path or
//     descriptor) keep their listening socket, so no connection is ever
//     refused; new ones open; removed ones stop accepting at once and
//     close once their in-flight requests are over (up to the
//     ShutdownTimeout of the configuration that had them). A front whose
//     protocol changed (or that turned to TLS or from it) keeps its socket
//     too, served by the new protocol; an https:// front that stays reads
//     its certificate again, from the files cfg names; a unix socket
//     takes the mode, owner and group cfg gives it;
//   - the admin listener is kept the same way, or moves, or opens, or
//     closes; it reports the configuration in force, and its counters go
//     on across reloads for the mounts that keep their prefix and backend
//     (all start again when a reload turns it on);
//   - the mounts switch at once for new requests, on every front
//     including connections kept alive; requests in progress finish with
//     the configuration they started with;
//   - worker pools (fastcgi+exec: mounts) whose settings did not change
//     are kept as they are, workers and all; new ones, and those whose
//     settings changed, start before the switch; those no longer used are
//     stopped once the requests of the replaced configuration are over
//     (up to its ShutdownTimeout). A pool the admin listener does not
//     report (it had none) is replaced when cfg has one; the workers of
//     wsgi:, psgi: and persist= mounts are always replaced, to load the
//     application anew;
//   - new requests log to the access log cfg names, in its format, with
//     its request ID header; the replaced configuration's file is closed
//     once its requests are over, unless cfg names the same file;
//   - with a [Config.LogSwitch], every line written from the switch on,
//     by the fronts, the pools and workers kept, and the command, takes
//     cfg's log format and level (those of the replaced configuration's
//     requests still in progress keep to its level).
//
// If cfg cannot be built, or a new listener, access log file or worker
// pool cannot open or start, or a certificate cannot be read,
// Reload returns why and the configuration in force stays, untouched.
// Reload logs one line saying what changed. It fails if Run is not
// serving (or serves a cgi: front), and cfg may not make it a cgi: front.
func (s *Server) Reload(cfg Config) error {
	r := s.run.Load()
	if r == nil {
		return errors.New("bridge: reload: the server is not running")
	}
	return r.reload(cfg)
}

func (r *runner) reload(cfg Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopping {
		return errors.New("bridge: reload: the server is shutting down")
	}
	old := r.cur.Load()
	next, err := newServer(cfg, old)
	if err != nil {
		return err
	}
	if len(next.cfg.Listen) == 1 && next.cfg.Listen[0].Protocol() == "cgi" {
		return errors.New("bridge: reload: a running server cannot become a cgi: front")
	}
	logOut, err := next.prepareLog()
	if err != nil {
		return err
	}
	if err := next.openLogs(); err != nil {
		return err
	}
	// Until the switch, a failure undoes what the reload opened.
	var fp frontPlan
	var ap adminPlan
	var start []spawned
	fail := func(err error) error {
		if next.stopGroups != nil {
			next.stopGroups()
		}
		stopPools(r.log, start)
		fp.close()
		closeFronts(ap.opened, false)
		next.closeLogsFor(old)
		return err
	}
	var ch changes
	ch.compare(old, next)
	if fp, err = r.planFronts(next.cfg.Listen, old.cfg.Fronts != next.cfg.Fronts, &ch); err != nil {
		return fail(err)
	}
	if ap, err = r.planAdmin(next.cfg.Admin, &ch); err != nil {
		return fail(err)
	}

	// Worker pools: start those the new configuration does not keep.
	var drop []spawned
	for _, sp := range next.pools {
		if !slices.ContainsFunc(old.pools, func(o spawned) bool { return o.pool == sp.pool }) {
			start = append(start, sp)
		}
	}
	for _, sp := range old.pools {
		if !slices.ContainsFunc(next.pools, func(n spawned) bool { return n.pool == sp.pool }) {
			drop = append(drop, sp)
		}
	}
	if err := startPools(r.log, start); err != nil {
		start = nil // startPools stopped those it started
		return fail(err)
	}
	// The new groups' first resolution answers before their first
	// request; the old groups keep checking until their requests end.
	next.stopGroups = next.startGroups()
	if err := r.setPIDFile(next.cfg.PIDFile); err != nil {
		return fail(err)
	}

	// The switch: new requests get next from here on, and every line
	// from here on takes its log's format and level.
	r.cur.Store(next)
	if logOut != nil {
		next.cfg.LogSwitch.cur.Store(logOut)
	}
	next.admin.inForce()
	if next.cfg.CPUs != r.cpus {
		ch.cpus = fmt.Sprintf("%d -> %d", r.cpus, next.cfg.CPUs)
		r.setCPUs(next.cfg.CPUs)
	}
	oldTimeout := old.cfg.ShutdownTimeout
	if oldTimeout <= 0 {
		oldTimeout = DefaultShutdownTimeout
	}
	for _, fs := range fp.removed {
		// A switched front's socket file is the new front's. Its
		// listener closes here, before the new front accepts on the
		// socket: no connection meets the old protocol's server.
		r.drain(fs, oldTimeout, fp.switched[fs])
	}
	r.fronts = r.fronts[:0]
	for _, k := range fp.keep {
		k.apply(r.log)
		r.fronts = append(r.fronts, k.fs)
	}
	r.serve(fp.opened)
	if ap.keep != nil {
		ap.keep.apply(r.log)
	}
	if ap.removed != nil {
		r.drain(ap.removed, oldTimeout, false)
		r.admin = nil
	}
	for _, f := range ap.opened {
		r.serveAdminOn(f)
	}
	r.retire(old, next, drop, oldTimeout)

	ch.poolsStarted = poolNames(start)
	ch.poolsStopped = poolNames(drop)
	ch.poolsKept = len(next.pools) - len(start)
	ch.log(r.log)
	return nil
}

// keptFront is a front a reload keeps, or the admin listener.
type keptFront struct {
	fs    *frontServer
	addr  Address    // as the new configuration spells it
	perms bool       // a unix socket whose file gets another mode, owner or group
	certs *certFiles // an https:// front's certificate, read again
}

// apply makes k's front what the new configuration says, once the
// reload has switched.
func (k keptFront) apply(log zerolog.Logger) {
	if k.perms {
		if err := socketPerms(k.addr.Path, k.addr.Query); err != nil {
			log.Warn().Err(err).Str("listen", k.addr.String()).Msg("ferry: reload: socket file permissions")
		}
	}
	if tl, ok := k.fs.l.(*tlsListener); ok && k.certs != nil {
		tl.certs.Store(k.certs)
	}
	k.fs.addr = k.addr
}

// keep returns how fs, a front or the admin listener on a's endpoint, is
// kept for a: its socket file's permissions set again if they changed,
// its certificate read again (an error names the files).
func (r *runner) keep(fs *frontServer, a Address, ch *changes) (keptFront, error) {
	k := keptFront{fs: fs, addr: a}
	if a.Network() == "unix" {
		for _, o := range []string{"mode", "owner", "group"} {
			k.perms = k.perms || a.Query.Get(o) != fs.addr.Query.Get(o)
		}
	}
	var err error
	if k.certs, err = frontCerts(a, &r.log); err != nil {
		return k, fmt.Errorf("bridge: reload: %w", err)
	}
	if a.String() != fs.addr.String() {
		ch.listenChanged = append(ch.listenChanged, fs.addr.String()+" -> "+a.String())
	}
	return k, nil
}

// frontPlan is how a reload changes the fronts.
type frontPlan struct {
	keep     []keptFront
	opened   []front               // opened for the reload, to serve once it switches
	dups     int                   // opened[:dups] share the socket of a running front
	removed  []*frontServer        // to drain once it switches
	switched map[*frontServer]bool // removed fronts whose socket a new front of another protocol serves
}

// planFronts matches the fronts of a configuration to the running ones,
// by endpoint: those that stay are kept, new ones opened, the others are
// to be removed. A front whose protocol changes on the same endpoint is
// removed, and its socket served by a new front ([dupListener]); so is
// every front when the front limits change (renew). Called with r.mu
// held; on error, nothing was opened.
func (r *runner) planFronts(listen []Address, renew bool, ch *changes) (frontPlan, error) {
	fp := frontPlan{switched: map[*frontServer]bool{}}
	byEndpoint := map[string]*frontServer{}
	for _, fs := range r.fronts {
		byEndpoint[endpoint(fs.addr)] = fs
	}
	used := map[*frontServer]bool{}
	var toOpen []Address
	for _, a := range listen {
		fs := byEndpoint[endpoint(a)]
		switch {
		case fs == nil:
			toOpen = append(toOpen, a)
		case !renew && fs.addr.Protocol() == a.Protocol() && (fs.addr.Scheme == "https") == (a.Scheme == "https"):
			used[fs] = true
			k, err := r.keep(fs, a, ch)
			if err != nil {
				fp.close()
				return frontPlan{}, err
			}
			fp.keep = append(fp.keep, k)
		default:
			// Another protocol on the same socket (or TLS, or no
			// more, or other limits): the new front serves a copy of
			// it, so that the socket (and what waits in its backlog)
			// lives on when the old front closes.
			certs, err := frontCerts(a, &r.log)
			var l net.Listener
			if err == nil {
				l, err = dupListener(fs.l)
			}
			if err != nil {
				fp.close()
				return frontPlan{}, fmt.Errorf("bridge: reload: listen %s: %w", a, err)
			}
			fp.switched[fs] = true
			fp.opened = append(fp.opened, front{addr: a, l: withTLS(l, certs)})
			fp.dups++
			ch.listenChanged = append(ch.listenChanged, fs.addr.String()+" -> "+a.String())
		}
	}
	fresh, err := r.open(toOpen, nil)
	if err != nil {
		fp.close()
		return frontPlan{}, err
	}
	fp.opened = append(fp.opened, fresh...)
	for _, f := range fresh {
		ch.listenAdded = append(ch.listenAdded, f.String())
	}
	for _, fs := range r.fronts {
		switch {
		case fp.switched[fs]:
			fp.removed = append(fp.removed, fs)
		case !used[fs]:
			fp.removed = append(fp.removed, fs)
			ch.listenRemoved = append(ch.listenRemoved, fs.String())
		}
	}
	return fp, nil
}

// close closes the fronts fp opened, for a reload that fails. The socket
// file of one that shares a running front's socket stays.
func (fp *frontPlan) close() {
	closeFronts(fp.opened[:fp.dups], true)
	closeFronts(fp.opened[fp.dups:], false)
}

// closeFronts closes fronts that will not serve, opened by a reload or by
// a Run that failed, and removes their socket files unless keepFiles:
// another front still serves them, or, for the sockets of an upgrade's
// handover, the replaced ferry, which serves on.
func closeFronts(fronts []front, keepFiles bool) {
	for _, f := range fronts {
		f.l.Close()
		if !keepFiles {
			f.cleanup()
		}
	}
}

// adminPlan is how a reload changes the admin listener.
type adminPlan struct {
	keep    *keptFront   // the admin listener stays on its endpoint
	opened  []front      // a new one, to serve once the reload switches
	removed *frontServer // the one in force, to drain then
}

// planAdmin matches the admin listener of a configuration (a, zero for
// none) to the running one: on the same endpoint it is kept, else a new
// one opens and the running one is to be removed. Called with r.mu held;
// on error, nothing was opened.
func (r *runner) planAdmin(a Address, ch *changes) (adminPlan, error) {
	var ap adminPlan
	cur := r.admin
	if cur != nil && a.Scheme != "" && endpoint(cur.addr) == endpoint(a) {
		k, err := r.keep(cur, a, &changes{})
		if a.String() != cur.addr.String() {
			ch.admin = cur.addr.String() + " -> " + a.String()
		}
		ap.keep = &k
		return ap, err
	}
	if a.Scheme != "" {
		var err error
		if ap.opened, err = r.open([]Address{a}, nil); err != nil {
			return adminPlan{}, err
		}
	}
	ap.removed = cur
	switch {
	case cur == nil && a.Scheme == "":
	case cur == nil:
		ch.admin = "none -> " + ap.opened[0].String()
	case a.Scheme == "":
		ch.admin = cur.String() + " -> none"
	default:
		ch.admin = cur.String() + " -> " + ap.opened[0].String()
	}
	return ap, nil
}

// retire lets the requests of old, a configuration next replaced, finish
// (up to timeout), then stops old's groups' health checks, removes the
// metrics of its mounts the configuration then in force has not, stops the
// worker pools next dropped (their workers' ends count as reason "reload"
// in the metrics), and closes old's access log file unless next writes to
// it too. A pool or a log
// file may have been kept from configurations replaced before old, whose
// requests may still use it: so each retirement also waits for the one
// before it. Called with r.mu held.
func (r *runner) retire(old, next *Server, drop []spawned, timeout time.Duration) {
	prev, done := r.retired, make(chan struct{})
	r.retired = done
	r.draining.Add(1)
	go func() {
		defer r.draining.Done()
		defer close(done)
		old.reqs.close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := old.reqs.wait(ctx); err != nil {
			r.log.Warn().Dur("timeout_ms", timeout).Msg("ferry: reload: requests of the replaced configuration still running; stopping its workers anyway")
		}
		if prev != nil {
			<-prev
		}
		old.stopGroups()
		r.mu.Lock()
		forgetMounts(old, r.cur.Load())
		r.mu.Unlock()
		for _, sp := range drop {
			if sp.stats != nil {
				sp.stats.reloaded.Store(true) // its workers end for the reload
			}
		}
		stopPools(r.log, drop)
		old.closeLogsFor(next)
	}()
}

// open opens a listener for each of addrs: on the socket h handed over
// for its endpoint, if any, else on a new one. On error, those opened are
// closed again.
func (r *runner) open(addrs []Address, h *Handover) ([]front, error) {
	var fronts []front
	for _, a := range addrs {
		l, err := r.listen(a, h)
		if err != nil {
			closeFronts(fronts, h != nil)
			return nil, err
		}
		fronts = append(fronts, front{addr: a, l: l})
	}
	return fronts, nil
}

// openAdmin opens the admin listener at a, if a is set, as open does.
func (r *runner) openAdmin(a Address, h *Handover) ([]front, error) {
	if a.Scheme == "" {
		return nil, nil
	}
	return r.open([]Address{a}, h)
}

// listen opens the listener of a: on the socket h handed over for its
// endpoint, if any (with TLS for an https:// front), else on a new one.
func (r *runner) listen(a Address, h *Handover) (net.Listener, error) {
	l := h.take(a)
	if l == nil {
		return listen(a, &r.log)
	}
	certs, err := frontCerts(a, &r.log)
	if err != nil {
		l.Close()
		return nil, err
	}
	return withTLS(l, certs), nil
}

// endpoint names the socket a front listens on, whatever protocol it
// speaks there: a reload keeps the socket of a front whose endpoint stays,
// and an upgrade hands sockets over by endpoint.
func endpoint(a Address) string {
	switch a.Network() {
	case "unix":
		return "unix:" + a.Path
	case "fd":
		return "fd:" + a.Host
	}
	return "tcp:" + a.Host
}

// requests counts the requests a configuration serves in a running ferry,
// so that a reload can wait for those of the configuration it replaced:
// once closed, no request enters any more, and wait returns when the last
// one has left. It costs a request two atomic additions. The zero value
// is open.
type requests struct {
	n       atomic.Int64 // the requests in, plus closedBit once closed
	closing sync.Once
	idle    chan struct{} // made by close; closed once closed with no request in
	idled   sync.Once
}

const closedBit = 1 << 62

// enter counts a request in, unless the configuration has been replaced.
func (q *requests) enter() bool {
	if q.n.Add(1)&closedBit != 0 {
		q.leave()
		return false
	}
	return true
}

// leave counts a request out.
func (q *requests) leave() {
	if q.n.Add(-1) == closedBit {
		q.idled.Do(func() { close(q.idle) })
	}
}

// close lets no request enter any more.
func (q *requests) close() {
	q.closing.Do(func() {
		q.idle = make(chan struct{}) // before the bit: whoever sees the bit sees idle
		if q.n.Add(closedBit) == closedBit {
			q.idled.Do(func() { close(q.idle) })
		}
	})
}

// wait waits, after close, until every request has left, or ctx ends.
func (q *requests) wait(ctx context.Context) error {
	select {
	case <-q.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// addPool adds the worker pool sp to the configuration being built, and
// returns it; or, when a reload builds it, the running configuration's
// pool with the same settings, which it keeps (each at most once) with
// its figures. A pool's figures cannot change once it runs: one that has
// none, or those of another mount, is not kept for a mount the admin
// listener reports.
func (s *Server) addPool(sp spawned) spawned {
	if i := slices.IndexFunc(s.carry, func(o spawned) bool { return samePool(o, sp) && sameFigures(o.stats, sp.stats) }); i >= 0 {
		sp = s.carry[i]
		s.carry = slices.Delete(s.carry, i, i+1)
	}
	s.pools = append(s.pools, sp)
	return sp
}

// samePool reports whether two worker pools, and their clients, have the
// same settings: every exported field but the loggers, the pool's
// Observer (its figures: [sameFigures]), its Probe (a func, never equal
// but to nil; the wiring sets the same one), its StartTimeout (which
// bounds a start only: a running pool has none to come) and the client's
// Address, which is the pool's socket once it runs. An application server's workers
// (wsgi:, psgi:, persist=) are never the same: a reload replaces them so
// that they load the application anew, as Gunicorn's and php-fpm's do.
func samePool(a, b spawned) bool {
	if a.pool != workerPool(a.procs) || b.pool != workerPool(b.procs) || a.what != b.what {
		return false
	}
	ca, ok := a.client.(*fastcgi.Client)
	cb, ok2 := b.client.(*fastcgi.Client)
	return ok && ok2 && sameFields(a.procs, b.procs, "Logger", "Observer", "Probe", "StartTimeout") && sameFields(ca, cb, "Logger", "Address")
}

// sameFigures reports whether a running pool whose figures are old can
// serve a mount that wants them to be want: nil wants none.
func sameFigures(old, want *poolStats) bool {
	return want == nil || old != nil && old.server == want.server && old.prefix == want.prefix
}

// sameFields reports whether the structs *a and *b, of one type, have
// equal exported fields, skipping those named.
func sameFields(a, b any, skip ...string) bool {
	va, vb := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	t := va.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() || slices.Contains(skip, f.Name) {
			continue
		}
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			return false
		}
	}
	return true
}

// poolNames names pools by their program, for the log.
func poolNames(pools []spawned) []string {
	var names []string
	for _, sp := range pools {
		names = append(names, sp.name)
	}
	return names
}

// changes is what a reload changed, for its log line.
type changes struct {
	listenAdded, listenRemoved, listenChanged []string
	mountsAdded, mountsRemoved, mountsChanged []string
	root                                      string   // "old -> new", if it changed
	admin                                     string   // "old -> new", if the admin listener changed
	accessLog                                 string   // "old -> new", if the access log's settings changed
	cpus                                      string   // "old -> new", if Config.CPUs changed
	settings                                  []string // "key: old -> new", for the other top-level and [log] keys that changed
	poolsStarted, poolsStopped                []string
	poolsKept                                 int
}

// compare records how the mounts and the document root of next differ
// from old's. A mount changed if its backend or any of its settings did.
func (ch *changes) compare(old, next *Server) {
	mounts := func(s *Server) map[string]string {
		m := map[string]string{}
		for _, mt := range s.cfg.Mounts {
			m[mt.Prefix] = fmt.Sprintf("%s %+v", mt.Backend, s.cfg.MountSettings(mt))
		}
		return m
	}
	om, nm := mounts(old), mounts(next)
	for _, mt := range next.cfg.Mounts {
		switch o, ok := om[mt.Prefix]; {
		case !ok:
			ch.mountsAdded = append(ch.mountsAdded, mt.Prefix)
		case o != nm[mt.Prefix]:
			ch.mountsChanged = append(ch.mountsChanged, mt.Prefix)
		}
	}
	for _, mt := range old.cfg.Mounts {
		if _, ok := nm[mt.Prefix]; !ok {
			ch.mountsRemoved = append(ch.mountsRemoved, mt.Prefix)
		}
	}
	if old.cfg.Root != next.cfg.Root {
		ch.root = strconv.Quote(old.cfg.Root) + " -> " + strconv.Quote(next.cfg.Root)
	}
	accessLog := func(c *Config) string {
		return fmt.Sprintf("on=%t file=%q format=%q request_id_header=%q", c.AccessLog, c.AccessLogFile, c.AccessLogFormat, c.RequestIDHeader)
	}
	if o, n := accessLog(&old.cfg), accessLog(&next.cfg); o != n {
		ch.accessLog = o + " -> " + n
	}
	// The other keys of the top level and [log]: shutdown_timeout,
	// pid_file, root_symlinks, log.format, log.level, and any added
	// later. A reload that changed one said "nothing changed".
	for _, k := range Keys() {
		if k.Table != "" && k.Table != "log" || reloadReported[k.Name] {
			continue
		}
		o, n := strings.Join(k.Get(&old.cfg), ","), strings.Join(k.Get(&next.cfg), ",")
		if o == n {
			continue
		}
		name := k.Name
		if k.Table != "" {
			name = k.Table + "." + name
		}
		ch.settings = append(ch.settings, fmt.Sprintf("%s: %q -> %q", name, o, n))
	}
}

// reloadReported are the keys of the top level and [log] whose changes
// a reload's line reports under a name of their own: the fronts (whose
// settings it reports as listen_changed), the admin listener, the
// document root, the access log and cpus.
var reloadReported = map[string]bool{
	"listen": true, "client_header_timeout": true, "client_body_timeout": true, "send_timeout": true,
	"keepalive_timeout": true, "max_conns": true, "admin": true, "root": true, "cpus": true,
	"access_log": true, "access_log_file": true, "access_log_format": true, "request_id_header": true,
}

// log writes the reload's line: what changed, or that nothing did.
func (ch *changes) log(l zerolog.Logger) {
	ev := l.Info()
	n := 0
	for _, f := range []struct {
		key  string
		vals []string
	}{
		{"listen_added", ch.listenAdded}, {"listen_removed", ch.listenRemoved}, {"listen_changed", ch.listenChanged},
		{"mounts_added", ch.mountsAdded}, {"mounts_removed", ch.mountsRemoved}, {"mounts_changed", ch.mountsChanged},
		{"pools_started", ch.poolsStarted}, {"pools_stopped", ch.poolsStopped}, {"settings_changed", ch.settings},
	} {
		if len(f.vals) > 0 {
			ev = ev.Strs(f.key, f.vals)
			n += len(f.vals)
		}
	}
	for _, f := range []struct{ key, val string }{{"root", ch.root}, {"admin", ch.admin}, {"access_log", ch.accessLog}, {"cpus", ch.cpus}} {
		if f.val != "" {
			ev = ev.Str(f.key, f.val)
			n++
		}
	}
	ev = ev.Int("pools_kept", ch.poolsKept)
	if n == 0 {
		ev.Msg("ferry: configuration reloaded; nothing changed")
		return
	}
	ev.Int("changes", n).Msg("ferry: configuration reloaded")
}
