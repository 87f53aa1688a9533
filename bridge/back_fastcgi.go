package bridge

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/spawn"
)

// phpSiteOptions are the options of a FastCGI application served as a PHP
// site (with a document root), shared by fastcgi:// and fastcgi+exec:.
func phpSiteOptions() []Option {
	return []Option{
		{Name: "ext", Type: String, Default: ".php", Doc: "with --root or alias: the script extension the path is split at"},
		{Name: "index", Type: String, Default: "index.php", Doc: "with --root or alias: the script a directory path runs"},
		{Name: "front", Type: String, Default: "/index.php", Doc: "with --root or alias: the front controller for paths that name nothing; empty turns it off (404)"},
		{Name: "alias", Type: String, Default: "none: the document root, at the same paths",
			Doc: "the directory the mount's prefix serves as a PHP site, as Apache's Alias (scripts and static files; --root not needed)"},
	}
}

// fastcgiBackend reaches a FastCGI application that runs on its own
// (php-fpm, a Go or Perl FastCGI server).
func fastcgiBackend() Backend {
	return Backend{
		Schemes: []string{"fastcgi", "fastcgi+unix"},
		Summary: "a FastCGI application such as php-fpm; with --root, a PHP site as nginx + php-fpm serves it",
		Options: append([]Option{
			{Name: "max_conns", Type: PositiveInt, Default: "a connection per request (kept and multiplexed up to the application's FCGI_MAX_CONNS when it allows)",
				Doc: "connections kept to the application, its worker count (php-fpm's pm.max_children); further requests queue in ferry"},
		}, phpSiteOptions()...),
		Settings: forwardSettings(),
		build:    buildFastCGI,
	}
}

// forwardSettings are the settings of the handlers that forward requests
// to a long-lived application (FastCGI, SCGI).
func forwardSettings() []string {
	return []string{"env", "cgi_queue_timeout", "max_request_body", "max_header_line", "spool_memory", "temp_dir"}
}

// fastcgiExecBackend starts and supervises FastCGI workers (php-cgi, a Perl
// FCGI script), as mod_fcgid and spawn-fcgi do.
func fastcgiExecBackend() Backend {
	return Backend{
		Schemes: []string{"fastcgi+exec"},
		Summary: "FastCGI workers ferry starts, restarts and stops itself (mod_fcgid's job), sharing one socket",
		Options: append([]Option{
			{Name: "workers", Type: PositiveInt, Default: "4", Doc: "the most workers running at once"},
			{Name: "max_requests", Type: PositiveInt, Default: "no limit", Doc: "requests a worker serves before it is replaced (PHP_FCGI_MAX_REQUESTS)"},
			{Name: "min_workers", Type: PositiveInt, Default: "all workers always run", Doc: "workers kept when idle: scale on demand between this and workers, as php-fpm's pm = ondemand"},
			{Name: "idle_timeout", Type: Duration, Default: "10s with min_workers", Doc: "how long workers beyond the peak of the last window stay"},
		}, phpSiteOptions()...),
		Settings: append(forwardSettings(), "pass_env", "cgi_kill_grace"),
		build:    buildFastCGI,
	}
}

func buildFastCGI(b *builder, m Mount, o options) (http.Handler, error) {
	st := &b.st
	addr := m.Backend.Host
	if m.Backend.Network() == "unix" {
		addr = m.Backend.Path
	}
	client := &fastcgi.Client{Network: m.Backend.Network(), Address: addr, Logger: b.logger("fastcgi-client"),
		QueueTimeout: st.QueueTimeout, MaxConns: o.positive("max_conns")}
	var pool *spawn.Pool
	if m.Backend.Scheme == "fastcgi+exec" {
		if _, err := os.Stat(m.Backend.Path); err != nil {
			return nil, err
		}
		idle := o.duration("idle_timeout")
		if idle == 0 && o.positive("min_workers") > 0 {
			idle = 10 * time.Second // php-fpm's pm.process_idle_timeout
		}
		pl := b.s.log.With().Str("component", "fastcgi-workers").Str("worker", m.Backend.Path).Logger()
		pool = &spawn.Pool{Path: m.Backend.Path, Workers: o.positive("workers"), Env: b.workerEnv(),
			MaxRequests: o.positive("max_requests"), MaxRequestsEnv: fastcgi.MaxRequestsEnv,
			MinWorkers: o.positive("min_workers"), IdleTimeout: idle, KillGrace: st.KillGrace, Logger: &pl}
		// A connection per request, as mod_fcgid does: a kept connection
		// holds its worker, and while a worker is being replaced, requests
		// on new connections would wait behind the idle ones. The pool
		// size still caps what runs at once.
		client.Address = "" // the pool's socket, known once it runs
		client.NoKeepConn = true
		client.MaxConns = pool.Size()
		b.s.pools = append(b.s.pools, spawned{pool: pool, client: client})
	}
	b.stats.watchFastCGI(client, pool)
	app := fastcgi.NewHandler(client, cgi.Mount{Prefix: m.Prefix, Root: b.s.cfg.Root}, b.gateway())
	if pool != nil && pool.IdleTimeout > 0 {
		app.Busy = pool.Busy
	}
	root, static, prefix := b.s.cfg.Root, b.static, ""
	var own *staticFiles // the alias's static files
	if o.has("alias") {
		root, prefix = o.str("alias"), m.Prefix
		if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("alias %s is not a directory%s", root, because(err))
		}
		own = &staticFiles{root: root, prefix: prefix}
		static = own
	}
	if root == "" {
		return app, nil
	}
	// With a document root, a PHP site as nginx + php-fpm serves it:
	// scripts split at .php, index.php, a front controller, and static
	// files served here, never by the application.
	site := &cgi.PHPSite{Root: root, Prefix: prefix, Ext: o.str("ext"), Index: o.str("index"), FrontController: "/index.php"}
	if o.has("front") {
		site.FrontController = o.str("front")
	}
	return &phpSite{Handler: site.Handler(app, static), site: site, app: app, static: own}, nil
}

// phpSite is the handler of a FastCGI mount with a document root, and
// what [Server.Explain] asks how it maps a path.
type phpSite struct {
	http.Handler
	site   *cgi.PHPSite
	app    *cgi.Forwarder
	static *staticFiles // an alias's static files; nil: the document root's
}

// startedPIDs returns the pids of the workers a pool starts with, once
// they run: Start returns when the first does, and starts the others in
// the background. It waits for them a second at most, and then returns
// the pids of those running.
func startedPIDs(p *spawn.Pool) []int {
	want := p.Size()
	if p.IdleTimeout > 0 {
		want = min(max(p.MinWorkers, 1), want)
	}
	deadline := time.Now().Add(time.Second)
	for {
		pids := p.PIDs()
		if len(pids) >= want || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(2 * time.Millisecond)
	}
}
