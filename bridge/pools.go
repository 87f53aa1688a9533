package bridge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/scgi"
	"github.com/ferrygw/ferry/spawn"
)

// poolOptions are the options of the worker pools ferry spawns; recycle
// says how max_requests reaches the workers.
func poolOptions(recycle string) []Option {
	return []Option{
		{Name: "workers", Type: PositiveInt, Default: "4", Doc: "the most workers running at once"},
		{Name: "max_requests", Type: PositiveInt, Default: "no limit", Doc: "requests a worker serves before it is replaced " + recycle},
		{Name: "min_workers", Type: PositiveInt, Default: "all workers always run", Doc: "workers kept when idle: scale on demand between this and workers, as php-fpm's pm = ondemand"},
		{Name: "idle_timeout", Type: Duration, Default: "10s with min_workers", Doc: "how long workers beyond the peak of the last window stay"},
	}
}

// startTimeoutOption bounds the wait for a fastcgi+exec pool's first
// worker to take a connection ([spawn.Pool.StartTimeout]): an application
// that loads for long (a framework's imports on a small machine) needs
// more than the default, as Gunicorn's --timeout and systemd's
// TimeoutStartSec are raised for one.
var startTimeoutOption = Option{Name: "start_timeout", Type: Duration, Default: "10s",
	Doc: "how long the first worker has to take a connection when the pool starts (or a reload starts it) before the start fails"}

// phpStartTimeoutOption is start_timeout for cgi:DIR?persist=php: its
// php-cgi workers start as a fastcgi+exec: pool's do, their first
// answering FCGI_GET_VALUES ([fastcgiProbe]). persist=perl's workers, as
// wsgi: and psgi:'s, are not waited for, and do without it.
func phpStartTimeoutOption() Option {
	o := startTimeoutOption
	o.Doc, o.Needs = "with persist=php: "+o.Doc, "persist=php"
	return o
}

// maxRSSOption recycles workers past a memory limit.
var maxRSSOption = Option{Name: "max_rss", Type: Size, Default: "no limit",
	Doc: "resident memory past which a worker finishes its request and is replaced (uWSGI's reload-on-rss; Linux)"}

// pool returns a worker pool with the mount's pool options and settings;
// the caller sets what it runs. Workers of scripts (fastcgi+exec, persist)
// run as scripts do: as the mount's cgi_user and cgi_group, and never as
// root unless asked. An application server's workers (appServer) run as
// ferry does unless cgi_user or cgi_group names someone, as Gunicorn's
// --user and uWSGI's uid do: the application's files and interpreter are
// the operator's, not a cgi-bin's.
func (b *builder) pool(o options, component, name string, appServer bool) (*spawn.Pool, error) {
	st := &b.st
	idle := o.duration("idle_timeout")
	if idle == 0 && o.positive("min_workers") > 0 {
		idle = 10 * time.Second // php-fpm's pm.process_idle_timeout
	}
	pl := b.s.processLog().With().Str("component", component).Str("worker", name).Logger() // a reload may keep the pool
	var cred *syscall.Credential
	if !appServer || st.User != "" || st.Group != "" {
		c, err := (&cgi.Handler{User: st.User, Group: st.Group}).Credential()
		if err != nil {
			return nil, err
		}
		cred = c
	} else if os.Geteuid() == 0 {
		pl.Warn().Msg("ferry: application workers run as root; set cgi_user to run them as another user")
	}
	return &spawn.Pool{Workers: o.positive("workers"), Env: b.workerEnv(), MaxRequests: o.positive("max_requests"),
		MinWorkers: o.positive("min_workers"), IdleTimeout: idle, KillGrace: st.KillGrace, Credential: cred, Logger: &pl}, nil
}

// spawnSCGI returns an SCGI client for workers ferry runs (pool, which
// runs the processes of procs), as many requests at once as procs has
// workers, each on a connection of its own. The workers start with the
// server; the client learns their socket then. timeout, if positive, is
// the hard timeout the workers enforce: the client's read timeout is left
// past it. The mount reports the workers, busy while a request holds a
// connection to one.
func (b *builder) spawnSCGI(pool workerPool, procs *spawn.Pool, timeout time.Duration, what, name string) *scgi.Client {
	client := &scgi.Client{Network: "unix", MaxConns: procs.Size(), QueueTimeout: b.st.QueueTimeout, Logger: b.logger("scgi-client")}
	if timeout > scgi.DefaultReadTimeout {
		client.ReadTimeout = timeout + time.Second
	}
	sp := b.s.addPool(spawned{pool: pool, procs: procs, client: client, what: what, name: name,
		connect: func(a string) { client.Address = a },
		stats:   b.stats.watchPool(procs, func() int { return client.Stats().Requests })})
	b.stats.showPool(sp.stats)
	return sp.client.(*scgi.Client)
}

// spawnFastCGI sets client up for workers ferry runs (pool, which runs
// the processes of procs): a connection per request, as mod_fcgid does (a
// kept connection holds its worker, and while a worker is being replaced,
// requests on new connections would wait behind the idle ones); the pool's
// size still caps what runs at once. The pool starts once a worker
// answers [fastcgiProbe]: a program that exits at once is a start error,
// and a reload to it is refused. It returns the pool the mount uses:
// this one, or the running one a reload keeps ([Server.addPool]), with its
// client and figures, which the caller has the mount report
// ([mountStats.watchFastCGI]).
func (b *builder) spawnFastCGI(pool workerPool, procs *spawn.Pool, client *fastcgi.Client, what, name string) spawned {
	client.Address = "" // the pool's socket, known once it runs
	client.NoKeepConn = true
	client.MaxConns = procs.Size()
	procs.Probe = fastcgiProbe
	return b.s.addPool(spawned{pool: pool, procs: procs, client: client, what: what, name: name,
		connect: func(a string) { client.Address = a },
		stats:   b.stats.watchPool(procs, func() int { return client.Stats().Requests })})
}

// fastcgiProbe asks the FastCGI workers at network and address for
// FCGI_GET_VALUES (FastCGI Specification § 4.1) on a connection of its
// own. Any answer, the connection closed unanswered, or the request read
// (a program that holds the connection without a word) shows that a
// worker accepted it: the pool holds the listening socket, so a
// connection no worker accepts waits in its backlog until ctx ends.
func fastcgiProbe(ctx context.Context, network, address string) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, address)
	if err != nil {
		return err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetWriteDeadline(dl)
	}
	q := fastcgi.AppendPair(nil, "FCGI_MAX_CONNS", "")
	if _, err := nc.Write(fastcgi.AppendRecord(nil, fastcgi.TypeGetValues, 0, q)); err != nil {
		return fmt.Errorf("fastcgi: GET_VALUES: %w", err)
	}
	// libfcgi (C programs, Perl's FCGI) reads on into the next record
	// before it answers GET_VALUES, and would wait for one: the end of
	// the stream makes it answer or close, both signs that it accepted.
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		if err := cw.CloseWrite(); err != nil {
			return fmt.Errorf("fastcgi: GET_VALUES: %w", err)
		}
	}
	var b [1]byte
	for {
		nc.SetReadDeadline(time.Now().Add(probePoll))
		_, err := nc.Read(b[:])
		switch {
		case err == nil || err == io.EOF:
			return nil
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("fastcgi: GET_VALUES: %w", err)
		case peerTookAll(nc):
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("fastcgi: GET_VALUES: no answer: %w", context.Cause(ctx))
		}
	}
}

// probePoll is how often [fastcgiProbe] looks whether a worker that has
// not answered read its request.
const probePoll = 20 * time.Millisecond
