package peers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// NginxFastCGIConfig configures [StartNginxFastCGI].
type NginxFastCGIConfig struct {
	// Backend is the FastCGI application, in fastcgi_pass syntax:
	// "127.0.0.1:9000" or "unix:/path/app.sock". It is required. When
	// started as root, nginx's workers run as root and can use any socket.
	Backend string
	// Locations are the URL path prefixes passed to the backend (plain
	// prefix locations, such as "/cgi-bin/"). Other paths get 404 from
	// nginx. If empty, "/" is used: everything goes to the backend, except
	// /ferry-peers-ready, which nginx answers itself for the readiness check.
	Locations []string
	// KeepAlive, if positive, keeps up to that many idle backend
	// connections open for reuse (an upstream block with "keepalive N;"
	// and "fastcgi_keep_conn on;"). If zero, nginx opens a connection per
	// request and the backend closes it after the response.
	KeepAlive int
	// Params are extra fastcgi_param lines, sent after the stock ones. A
	// name that is also a stock parameter (see the package's
	// fastcgi_params, SCRIPT_FILENAME or PATH_INFO) replaces it instead of
	// being sent twice. Values are literal: they must not contain '$'
	// (nginx variables) or control characters.
	Params map[string]string
	// Root is nginx's root: DOCUMENT_ROOT, and the directory
	// SCRIPT_FILENAME ($document_root$fastcgi_script_name) is in. If empty,
	// an empty directory in the server's Dir is used.
	Root string
	// SplitPathInfo, if set, is a fastcgi_split_path_info regular
	// expression (PCRE) with two captures, such as `^(.+\.php)(/.*)$`: the
	// first becomes SCRIPT_NAME (and the end of SCRIPT_FILENAME), the second
	// PATH_INFO. If empty, no PATH_INFO is sent and SCRIPT_NAME is the
	// whole path.
	SplitPathInfo string
}

// nginxReadyPath answers 204 from nginx itself, for the readiness check.
const nginxReadyPath = readyPath

// nginxUpstream names the upstream block used with KeepAlive.
const nginxUpstream = "ferry_backend"

// nginxFastCGIParams is what goes into the nginx.conf of [StartNginxFastCGI].
type nginxFastCGIParams struct {
	dir, root string
	port      int
	asRoot    bool
	backend   backend
	cfg       *NginxFastCGIConfig
}

// fastcgiParam is a fastcgi_param line: a name and nginx's raw value text.
type fastcgiParam struct{ name, value string }

// stockFastCGIParams returns the fastcgi_param lines of [fastcgiParams], in order.
func stockFastCGIParams() []fastcgiParam {
	var ps []fastcgiParam
	for line := range strings.Lines(fastcgiParams) {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		if len(f) >= 3 && f[0] == "fastcgi_param" {
			ps = append(ps, fastcgiParam{f[1], strings.Join(f[2:], " ")})
		}
	}
	return ps
}

// params returns every fastcgi_param line of a location: stock, then
// SCRIPT_FILENAME and PATH_INFO, then the extra ones, with extra values
// replacing earlier ones of the same name.
func (p *nginxFastCGIParams) params() []fastcgiParam {
	ps := stockFastCGIParams()
	ps = append(ps, fastcgiParam{"SCRIPT_FILENAME", "$document_root$fastcgi_script_name"})
	if p.cfg.SplitPathInfo != "" {
		ps = append(ps, fastcgiParam{"PATH_INFO", "$fastcgi_path_info"})
	}
	keys := make([]string, 0, len(p.cfg.Params))
	for k := range p.cfg.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := quote(p.cfg.Params[k])
		if i := slices.IndexFunc(ps, func(q fastcgiParam) bool { return q.name == k }); i >= 0 {
			ps[i].value = v
		} else {
			ps = append(ps, fastcgiParam{k, v})
		}
	}
	return ps
}

// nginxFastCGIConfig renders a self-contained nginx.conf; it includes nothing from /etc.
func nginxFastCGIConfig(p nginxFastCGIParams) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	nginxHeader(w, p.dir, p.asRoot)
	pass := quote(p.backend.String())
	if p.cfg.KeepAlive > 0 {
		w("  upstream %s {", nginxUpstream)
		w("    server %s;", pass)
		w("    keepalive %d;", p.cfg.KeepAlive)
		w("  }")
		pass = nginxUpstream
	}
	w("  server {")
	w("    listen 127.0.0.1:%d;", p.port)
	w("    server_name localhost;")
	w("    root %s;", quote(p.root))
	w("    location = %s { return 204; }", nginxReadyPath)
	locations := p.cfg.Locations
	if len(locations) == 0 {
		locations = []string{"/"}
	}
	if !slices.Contains(locations, "/") {
		w("    location / { return 404; }")
	}
	params := p.params()
	width := 0
	for _, q := range params {
		width = max(width, len(q.name))
	}
	for _, loc := range locations {
		w("    location %s {", quote(loc))
		if re := p.cfg.SplitPathInfo; re != "" {
			w("      fastcgi_split_path_info %s;", quote(re))
		}
		for _, q := range params {
			w("      fastcgi_param  %-*s  %s;", width, q.name, q.value)
		}
		w("      fastcgi_pass %s;", pass)
		if p.cfg.KeepAlive > 0 {
			w("      fastcgi_keep_conn on;")
		}
		w("      fastcgi_read_timeout 60s;")
		w("    }")
	}
	w("  }")
	w("}")
	return b.String()
}

// checkNginxFastCGIConfig validates cfg and returns its backend.
func checkNginxFastCGIConfig(cfg *NginxFastCGIConfig) (backend, error) {
	be, err := parseBackend("Backend", cfg.Backend, false)
	if err != nil {
		return backend{}, err
	}
	if cfg.KeepAlive < 0 {
		return backend{}, fmt.Errorf("peers: KeepAlive %d is negative", cfg.KeepAlive)
	}
	seen := make(map[string]bool)
	for _, loc := range cfg.Locations {
		if !strings.HasPrefix(loc, "/") || loc == nginxReadyPath {
			return backend{}, fmt.Errorf("peers: location %q does not start with '/' or is reserved", loc)
		}
		if err := checkConfigString("location", loc); err != nil {
			return backend{}, err
		}
		if seen[loc] {
			return backend{}, fmt.Errorf("peers: duplicate location %q", loc)
		}
		seen[loc] = true
	}
	if err := checkEnv(cfg.Params); err != nil {
		return backend{}, err
	}
	// A regular expression ends in '$' more often than not; nginx does not
	// expand variables in fastcgi_split_path_info.
	if err := checkConfigString("SplitPathInfo", strings.ReplaceAll(cfg.SplitPathInfo, "$", "")); err != nil {
		return backend{}, err
	}
	return be, nil
}

// StartNginxFastCGI starts nginx on a free 127.0.0.1 port in front of the
// FastCGI application at cfg.Backend, which the caller runs (ferry, php-fpm
// from [StartPHPFPM], Go's net/http/fcgi, ...). The backend need not be up
// yet: nginx connects on the first request. nginx.conf, the pid file and
// the logs go into dir, which should be empty; the error log, which
// receives the backend's FastCGI stderr ("FastCGI sent in stderr"), is
// dir/error.log, nginx's own stderr dir/nginx.stderr.log. No access log
// is written.
//
// The parameters are nginx's stock fastcgi_params (HTTP_HOST is the Host
// header as sent, unlike Debian's copy), SCRIPT_FILENAME
// $document_root$fastcgi_script_name, PATH_INFO with cfg.SplitPathInfo,
// then cfg.Params. Everything else keeps nginx's defaults: request bodies
// are buffered before the backend is called (fastcgi_request_buffering),
// responses are buffered (fastcgi_buffering) unless the backend sends
// "X-Accel-Buffering: no", and fastcgi_read_timeout is 60s.
//
// ctx bounds only the start; call [Server.Stop] when done.
func StartNginxFastCGI(ctx context.Context, dir string, cfg NginxFastCGIConfig) (*Server, error) {
	bin, err := Lookup("nginx")
	if err != nil {
		return nil, err
	}
	be, err := checkNginxFastCGIConfig(&cfg)
	if err != nil {
		return nil, err
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	if err := checkConfigString("directory", dir); err != nil {
		return nil, err
	}
	root := cfg.Root
	if root == "" {
		root = filepath.Join(dir, "htdocs")
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, fmt.Errorf("peers: %w", err)
		}
	}
	if root, err = filepath.Abs(root); err != nil {
		return nil, fmt.Errorf("peers: Root: %w", err)
	}
	if err := checkConfigString("Root", root); err != nil {
		return nil, err
	}
	if err := prepareNginxDir(dir); err != nil {
		return nil, err
	}
	asRoot := os.Geteuid() == 0
	return startNginx(ctx, bin, dir, nginxReadyPath, func(port int) string {
		return nginxFastCGIConfig(nginxFastCGIParams{
			dir: dir, root: root, port: port, asRoot: asRoot, backend: be, cfg: &cfg,
		})
	})
}
