package bridge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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
//     protocol changed keeps its socket too, served by the new protocol;
//   - the mounts switch at once for new requests, on every front
//     including connections kept alive; requests in progress finish with
//     the configuration they started with;
//   - worker pools (fastcgi+exec: mounts) whose settings did not change
//     are kept as they are, workers and all; new ones, and those whose
//     settings changed, start before the switch; those no longer used are
//     stopped once the requests of the replaced configuration are over
//     (up to its ShutdownTimeout).
//
// If cfg cannot be built, or a new listener or worker pool cannot start,
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
	next, err := newServer(cfg, old.pools)
	if err != nil {
		return err
	}
	if len(next.cfg.Listen) == 1 && next.cfg.Listen[0].Protocol() == "cgi" {
		return errors.New("bridge: reload: a running server cannot become a cgi: front")
	}
	var ch changes
	ch.compare(old, next)
	fp, err := r.planFronts(next.cfg.Listen, &ch)
	if err != nil {
		return err
	}

	// Worker pools: start those the new configuration does not keep.
	var start, drop []spawned
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
		closeOpened(fp.opened)
		return err
	}
	if err := r.setPIDFile(next.cfg.PIDFile); err != nil {
		stopPools(r.log, start)
		closeOpened(fp.opened)
		return err
	}

	// The switch: new requests get next from here on.
	r.cur.Store(next)
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
	for _, k := range fp.keep {
		if k.chmod {
			if err := chmodSocket(k.addr); err != nil {
				r.log.Warn().Err(err).Str("listen", k.addr.String()).Msg("ferry: reload: socket mode")
			}
		}
		k.fs.addr = k.addr
	}
	r.fronts = r.fronts[:0]
	for _, k := range fp.keep {
		r.fronts = append(r.fronts, k.fs)
	}
	r.serve(fp.opened)
	r.retire(old, drop, oldTimeout)

	ch.poolsStarted = poolNames(start)
	ch.poolsStopped = poolNames(drop)
	ch.poolsKept = len(next.pools) - len(start)
	ch.log(r.log)
	return nil
}

// keptFront is a front a reload keeps.
type keptFront struct {
	fs    *frontServer
	addr  Address // as the new configuration spells it
	chmod bool    // a unix front whose socket file gets another mode
}

// frontPlan is how a reload changes the fronts.
type frontPlan struct {
	keep     []keptFront
	opened   []front               // opened for the reload, to serve once it switches
	removed  []*frontServer        // to drain once it switches
	switched map[*frontServer]bool // removed fronts whose socket a new front of another protocol serves
}

// planFronts matches the fronts of a configuration to the running ones,
// by endpoint: those that stay are kept, new ones opened, the others are
// to be removed. A front whose protocol changes on the same endpoint is
// removed, and its socket served by a new front ([dupListener]). Called
// with r.mu held; on error, nothing was opened.
func (r *runner) planFronts(listen []Address, ch *changes) (frontPlan, error) {
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
		case fs.addr.Protocol() == a.Protocol():
			used[fs] = true
			mode := a.Query.Get("mode")
			chmod := a.Network() == "unix" && mode != "" && mode != fs.addr.Query.Get("mode")
			fp.keep = append(fp.keep, keptFront{fs: fs, addr: a, chmod: chmod})
			if chmod {
				ch.listenChanged = append(ch.listenChanged, fs.addr.String()+" -> "+a.String())
			}
		default:
			// Another protocol on the same socket: the new front
			// serves a copy of it, so that the socket (and what waits in
			// its backlog) lives on when the old front closes.
			l, err := dupListener(fs.l)
			if err != nil {
				closeOpened(fp.opened)
				return frontPlan{}, fmt.Errorf("bridge: reload: listen %s: %w", a, err)
			}
			fp.switched[fs] = true
			fp.opened = append(fp.opened, front{addr: a, l: l})
			ch.listenChanged = append(ch.listenChanged, fs.addr.String()+" -> "+a.String())
		}
	}
	fresh, err := r.open(toOpen, nil)
	if err != nil {
		closeOpened(fp.opened)
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

// closeOpened closes fronts a failed reload opened, and removes their
// socket files.
func closeOpened(fronts []front) {
	for _, f := range fronts {
		f.l.Close()
		f.cleanup()
	}
}

// retire lets the requests of old, a replaced configuration, finish (up
// to timeout), then stops the worker pools the new configuration dropped.
// A pool may have been kept from configurations replaced before old, whose
// requests may still use it: so each retirement also waits for the one
// before it. Called with r.mu held.
func (r *runner) retire(old *Server, drop []spawned, timeout time.Duration) {
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
			r.log.Warn().Dur("timeout", timeout).Msg("ferry: reload: requests of the replaced configuration still running; stopping its workers anyway")
		}
		if prev != nil {
			<-prev
		}
		stopPools(r.log, drop)
	}()
}

// open opens a listener for each of addrs: the socket h handed over for
// its endpoint, if any, else a new one. On error, those opened are closed
// again.
func (r *runner) open(addrs []Address, h *Handover) ([]front, error) {
	var fronts []front
	for _, a := range addrs {
		l := h.take(a)
		if l == nil {
			var err error
			if l, err = listen(a); err != nil {
				closeOpened(fronts)
				return nil, err
			}
		}
		fronts = append(fronts, front{addr: a, l: l})
	}
	return fronts, nil
}

// chmodSocket gives a unix front's socket file the mode its ?mode= asks.
func chmodSocket(a Address) error {
	mode, err := strconv.ParseUint(a.Query.Get("mode"), 8, 32)
	if err == nil {
		err = os.Chmod(a.Path, os.FileMode(mode))
	}
	return err
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
// pool with the same settings, which it keeps (each at most once).
func (s *Server) addPool(sp spawned) spawned {
	if i := slices.IndexFunc(s.carry, func(o spawned) bool { return samePool(o, sp) }); i >= 0 {
		sp = s.carry[i]
		s.carry = slices.Delete(s.carry, i, i+1)
	}
	s.pools = append(s.pools, sp)
	return sp
}

// samePool reports whether two worker pools, and their clients, have the
// same settings: every exported field but the loggers and the client's
// Address, which is the pool's socket once it runs.
func samePool(a, b spawned) bool {
	return sameFields(a.pool, b.pool, "Logger") && sameFields(a.client, b.client, "Logger", "Address")
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
		names = append(names, sp.pool.Path)
	}
	return names
}

// changes is what a reload changed, for its log line.
type changes struct {
	listenAdded, listenRemoved, listenChanged []string
	mountsAdded, mountsRemoved, mountsChanged []string
	root                                      string // "old -> new", if it changed
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
		{"pools_started", ch.poolsStarted}, {"pools_stopped", ch.poolsStopped},
	} {
		if len(f.vals) > 0 {
			ev = ev.Strs(f.key, f.vals)
			n += len(f.vals)
		}
	}
	if ch.root != "" {
		ev = ev.Str("root", ch.root)
		n++
	}
	ev = ev.Int("pools_kept", ch.poolsKept)
	if n == 0 {
		ev.Msg("ferry: configuration reloaded; nothing changed")
		return
	}
	ev.Int("changes", n).Msg("ferry: configuration reloaded")
}
