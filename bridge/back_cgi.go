package bridge

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/appserver"
	"github.com/ferrygw/ferry/scgi"
)

// cgiBackend runs scripts, one process per request (RFC 3875): a directory
// with ScriptAlias semantics, one script, or, with from=script-filename,
// the script the front web server names (fcgiwrap's way).
func cgiBackend() Backend {
	return Backend{
		Schemes: []string{"cgi"},
		Summary: "CGI scripts, a process per request: a directory (ScriptAlias semantics) or one script",
		Options: append([]Option{
			{Name: "symlinks", Type: String, Values: symlinkPolicies(), Default: "owner-match",
				Doc: "which symbolic links on a script's path are followed: those whose owner owns the target or that stay inside the directory (Apache's SymLinksIfOwnerMatch), all, or none"},
			{Name: "from", Type: String, Values: []string{"script-filename"}, Default: "the URL path",
				Doc: "take the script from the SCRIPT_FILENAME the front web server sends, confined to the directory (fcgiwrap's way)"},
			{Name: "persist", Type: String, Values: []string{"php", "perl"}, Default: "a process per request",
				Doc: "with a directory: run its .php files in php-cgi workers, or its Perl scripts kept compiled in Perl workers (ModPerl::Registry's way); the pool options below apply"},
		}, needPersist(append(poolOptions("(persist)"), phpStartTimeoutOption(), maxRSSOption))...),
		Settings: []string{"env", "pass_env", "cgi_pass_auth", "cgi_timeout", "cgi_kill_grace", "cgi_user", "cgi_group",
			"cgi_keep_background", "cgi_rlimit_cpu", "cgi_rlimit_as", "cgi_rlimit_nproc", "cgi_rlimit_nofile", "cgi_max_output", "cgi_max_concurrent",
			"cgi_max_queue", "cgi_queue_timeout", "max_request_body", "max_header_line", "spool_memory", "temp_dir"},
		build: buildCGI,
	}
}

func buildCGI(b *builder, m Mount, o options) (http.Handler, error) {
	if m.Backend.Path == "" {
		return nil, fmt.Errorf("cgi: needs a directory or script path")
	}
	fi, err := os.Stat(m.Backend.Path)
	if err != nil {
		return nil, err
	}
	h := b.scriptHandler()
	b.onRouter = append(b.onRouter, func(rt http.Handler) { h.RedirectHandler = rt })
	if o.has("persist") {
		if !fi.IsDir() || o.has("from") {
			return nil, fmt.Errorf("persist needs a directory of scripts, without from")
		}
	}
	switch {
	case o.str("from") == "script-filename":
		if !fi.IsDir() {
			return nil, fmt.Errorf("from=script-filename needs a directory")
		}
		h.Resolver = &cgi.FilenameDir{Roots: []string{m.Backend.Path}}
		return h, nil
	case fi.IsDir():
		if !strings.HasSuffix(m.Prefix, "/") {
			return nil, fmt.Errorf("a directory must be mounted at a prefix ending in /")
		}
		dir := &cgi.Dir{Path: m.Backend.Path, Prefix: m.Prefix, Root: h.DocumentRoot}
		if o.has("symlinks") {
			p, err := cgi.ParseSymlinkPolicy(o.str("symlinks"))
			if err != nil {
				return nil, err
			}
			dir.Symlinks = p
		}
		h.Resolver = dir
		if o.has("persist") {
			return b.persistent(m, o, h)
		}
		return h, nil
	case fi.Mode().Perm()&0o111 == 0:
		return nil, fmt.Errorf("%s is not executable", m.Backend.Path)
	}
	h.Path = m.Backend.Path
	h.ScriptName = strings.TrimSuffix(m.Prefix, "/")
	return h, nil
}

// persistent serves the scripts h finds that persist names in workers:
// .php files in php-cgi FastCGI workers, Perl scripts in ferry's Perl
// workers (kept compiled); h runs the other scripts, and those the Perl
// workers send back, a process per request as without persist.
func (b *builder) persistent(m Mount, o options, h *cgi.Handler) (http.Handler, error) {
	st := &b.st
	p := &appserver.Persistent{CGI: h, PassAuthorization: h.PassAuthorization, Limits: h.BodyLimits}
	w := &appserver.Workers{MaxRSS: o.size("max_rss"), ResponseIDHeader: b.s.requestIDHeader()}
	scripts := cgi.ResolverFunc(appserver.ScriptOf)
	switch o.str("persist") {
	case "php":
		php, err := exec.LookPath("php-cgi")
		if err != nil {
			return nil, fmt.Errorf("persist=php: %w", err)
		}
		if w.Pool, err = b.pool(o, "php-cgi-workers", php, false); err != nil {
			return nil, err
		}
		w.Pool.Path, w.Pool.MaxRequestsEnv = php, fastcgi.MaxRequestsEnv
		w.Pool.StartTimeout = o.duration("start_timeout")
		client := &fastcgi.Client{Network: "unix", QueueTimeout: st.QueueTimeout, Logger: b.logger("fastcgi-client")}
		sp := b.spawnFastCGI(w, w.Pool, client, "php-cgi workers", php)
		b.stats.watchFastCGI(client, sp.stats)
		p.Workers, p.Accept = w.Handler(fastcgi.NewHandler(client, scripts, b.gateway())), appserver.IsPHP
	case "perl":
		w.App, w.IDHeader = &appserver.PerlCGI{}, "X-Ferry-Request-Id"
		if err := w.App.Check(); err != nil {
			return nil, err
		}
		var err error
		if w.Pool, err = b.pool(o, "perl-cgi-workers", m.Backend.Path, false); err != nil {
			return nil, err
		}
		// The wall-clock limit of a script, as under CGI.
		switch t := st.ScriptTimeout; {
		case t == 0:
			w.Timeout = cgi.DefaultTimeout
		case t > 0:
			w.Timeout = t
		}
		client := b.spawnSCGI(w, w.Pool, w.Timeout, "Perl CGI workers", m.Backend.Path)
		p.Workers = w.Handler(scgi.NewHandler(client, scripts, b.gateway()))
		p.Accept, p.Fallback, p.SCGI = appserver.IsPerl, true, true
	}
	return p, nil
}

// needPersist marks the pool options of a cgi: mount as needing persist
// (Option.Needs), those not needing a persist value already: without
// persist a script runs as a process per request, and they do nothing.
func needPersist(opts []Option) []Option {
	for i := range opts {
		if opts[i].Needs == "" {
			opts[i].Needs = "persist"
		}
	}
	return opts
}
