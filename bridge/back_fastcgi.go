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

// readTimeoutOption bounds each wait for an application's answer, as
// nginx's fastcgi_read_timeout and scgi_read_timeout.
func readTimeoutOption() Option {
	return Option{Name: "read_timeout", Type: Duration, Default: "60s",
		Doc: "longest wait for each read of the application's answer; past it 504 if nothing was sent yet, else the response is cut"}
}

// fastcgiBackend reaches a FastCGI application that runs on its own
// (php-fpm, a Go or Perl FastCGI server).
func fastcgiBackend() Backend {
	return Backend{
		Schemes: []string{"fastcgi", "fastcgi+unix"},
		Summary: "a FastCGI application such as php-fpm; with --root, a PHP site as nginx + php-fpm serves it",
		Options: append([]Option{
			{Name: "max_conns", Type: PositiveInt, Default: "a connection per request (kept up to the application's FCGI_MAX_CONNS when it says it; multiplexed when it allows that and fewer than 64 connections)",
				Doc: "connections kept to the application, its worker count (php-fpm's pm.max_children); further requests queue in ferry"},
			readTimeoutOption(),
		}, phpSiteOptions()...),
		Group:    true,
		Settings: forwardSettings(),
		build:    buildFastCGI,
	}
}

// forwardSettings are the settings of the handlers that forward requests
// to a long-lived application (FastCGI, SCGI).
func forwardSettings() []string {
	return []string{"env", "cgi_queue_timeout", "max_request_body", "max_header_line", "spool_memory", "temp_dir"}
}

// workerSettings are the settings of the backs whose workers ferry
// starts: fastcgi+exec:, wsgi:, psgi:.
func workerSettings() []string {
	return append(forwardSettings(), "pass_env", "cgi_kill_grace", "cgi_user", "cgi_group")
}

// fastcgiExecBackend starts and supervises FastCGI workers (php-cgi, a Perl
// FCGI script), as mod_fcgid and spawn-fcgi do.
func fastcgiExecBackend() Backend {
	return Backend{
		Schemes:  []string{"fastcgi+exec"},
		Summary:  "FastCGI workers ferry starts, restarts and stops itself (mod_fcgid's job), sharing one socket",
		Options:  append(append(poolOptions("(PHP_FCGI_MAX_REQUESTS)"), startTimeoutOption, readTimeoutOption()), phpSiteOptions()...),
		Group:    true,
		Settings: workerSettings(),
		build:    buildFastCGI,
	}
}

func buildFastCGI(b *builder, m Mount, o options) (http.Handler, error) {
	var app *cgi.Forwarder
	if m.isGroup() {
		g, err := b.newGroup(m, o, func(a Address, o options) (*member, error) {
			client, pool, _, err := b.fastcgiClient(a, o)
			if err != nil {
				return nil, err
			}
			mb := &member{t: client, limit: int64(client.MaxConns)}
			if pool != nil && pool.IdleTimeout > 0 {
				mb.busy = pool.Busy
			}
			return mb, nil
		})
		if err != nil {
			return nil, err
		}
		app = fastcgi.NewHandler(nil, cgi.Mount{Prefix: m.Prefix, Root: b.s.cfg.Root}, b.gateway())
		app.Transport = g
		g.headLimits = app.HeaderLimits
	} else {
		client, pool, ps, err := b.fastcgiClient(m.Backend, o)
		if err != nil {
			return nil, err
		}
		b.stats.watchFastCGI(client, ps)
		app = fastcgi.NewHandler(client, cgi.Mount{Prefix: m.Prefix, Root: b.s.cfg.Root}, b.gateway())
		if pool != nil && pool.IdleTimeout > 0 {
			app.Busy = pool.Busy
		}
	}
	root, static, prefix := b.s.cfg.Root, b.static, ""
	var own *staticFiles // the alias's static files
	if o.has("alias") {
		root, prefix = o.str("alias"), m.Prefix
		if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("alias %s is not a directory%s", root, because(err))
		}
		// Its static files follow the document root's symbolic link
		// policy (root_symlinks).
		var err error
		if own, err = newStaticFiles(root, b.s.cfg.RootSymlinks); err != nil {
			return nil, err
		}
		own.prefix = prefix
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

// fastcgiClient returns the client of FastCGI backend a and, for a
// fastcgi+exec: one, the pool of workers it reaches (started by Run, or the
// running one a reload keeps) and the figures the mount reports of it.
func (b *builder) fastcgiClient(a Address, o options) (*fastcgi.Client, *spawn.Pool, *poolStats, error) {
	addr := a.Host
	if a.Network() == "unix" {
		addr = a.Path
	}
	client := &fastcgi.Client{Network: a.Network(), Address: addr, Logger: b.logger("fastcgi-client"),
		QueueTimeout: b.st.QueueTimeout, MaxConns: o.positive("max_conns"), ReadTimeout: o.duration("read_timeout")}
	if a.Scheme != "fastcgi+exec" {
		return client, nil, nil, nil
	}
	if _, err := os.Stat(a.Path); err != nil {
		return nil, nil, nil, err
	}
	p, err := b.pool(o, "fastcgi-workers", a.Path, false)
	if err != nil {
		return nil, nil, nil, err
	}
	p.Path, p.MaxRequestsEnv = a.Path, fastcgi.MaxRequestsEnv
	p.StartTimeout = o.duration("start_timeout")
	sp := b.spawnFastCGI(p, p, client, "FastCGI workers", a.Path)
	return sp.client.(*fastcgi.Client), sp.procs, sp.stats, nil
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
