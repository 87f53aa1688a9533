package peers

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"strings"
)

// ApacheProxyFCGIConfig configures [StartApacheProxyFCGI].
type ApacheProxyFCGIConfig struct {
	// Backend is the FastCGI application, in nginx's fastcgi_pass syntax:
	// "127.0.0.1:9000" or "unix:/path/app.sock". It is required. When
	// started as root, Apache connects as www-data, which needs write
	// permission on a unix socket and search permission on its directories;
	// StartApacheProxyFCGI checks that if the socket already exists.
	Backend string
	// Prefix is the URL path prefix proxied, such as "/cgi-bin/": the rule
	// is "ProxyPass Prefix fcgi://Backend/Prefix" (for a unix socket,
	// "unix:/path/app.sock|fcgi://localhost/Prefix"). If empty, "/" is used:
	// everything goes to the backend, except /ferry-peers-ready, which
	// Apache serves itself for the readiness check.
	Prefix string
	// BackendPath, if set, replaces Prefix as the path of the backend URL.
	// mod_proxy_fcgi sends the backend URL, path included, as
	// SCRIPT_FILENAME ("proxy:fcgi://127.0.0.1:9000/cgi-bin/x.php/more"),
	// and php-fpm opens the path after the host as a file, so in front of
	// php-fpm BackendPath is the directory served at Prefix, such as
	// "/srv/www/cgi-bin/". It must start with '/' and should end with '/'
	// when Prefix does.
	BackendPath string
	// PathInfo, if set, is the value of mod_proxy_fcgi's
	// proxy-fcgi-pathinfo variable, which makes Apache send PATH_INFO
	// (set with SetEnvIf: plain SetEnv comes too late for mod_proxy_fcgi).
	// For /cgi-bin/x.sh/a/b.c/d, "first-dot" sends SCRIPT_NAME
	// /cgi-bin/x.sh and PATH_INFO /a/b.c/d, "last-dot" /cgi-bin/x.sh/a/b.c
	// and /d; "unescape" and other values send the whole URL path as
	// PATH_INFO and an empty SCRIPT_NAME. If empty, Apache sends no
	// PATH_INFO and the whole path as SCRIPT_NAME.
	PathInfo string
	// EnableReuse keeps backend connections open for reuse
	// (ProxyPass ... enablereuse=on). If false, Apache opens a connection
	// per request, mod_proxy_fcgi's default.
	EnableReuse bool
	// FlushPackets passes the backend's output on to the client as it
	// arrives (ProxyPass ... flushpackets=on), which streaming responses
	// need. If false, mod_proxy_fcgi's default: output is flushed only
	// when its buffer fills or the response ends.
	FlushPackets bool
	// SendCL makes Apache read a chunked request body in full before
	// calling the backend, and send its length as CONTENT_LENGTH
	// (SetEnv proxy-sendcl 1). If false, Apache's default: a chunked body
	// is streamed to the backend with no CONTENT_LENGTH, only
	// HTTP_TRANSFER_ENCODING=chunked, and the backend reads FCGI_STDIN to
	// its end.
	SendCL bool
	// Env holds variables set with SetEnv; mod_proxy_fcgi sends them to the
	// backend as parameters. Values must not contain '$' or control
	// characters.
	Env map[string]string
	// MaxWorkers caps concurrent requests (MaxRequestWorkers), as in
	// [ApacheCGIConfig]. If zero, Apache's defaults are used.
	MaxWorkers int
}

// StartApacheProxyFCGI starts Apache httpd (event MPM) with mod_proxy and
// mod_proxy_fcgi on a free 127.0.0.1 port, passing cfg.Prefix to the
// FastCGI application at cfg.Backend, which the caller runs. The backend
// need not be up yet. httpd.conf, the pid file and the logs go into dir,
// which should be empty and is made world-readable as in
// [StartApacheCGI]. The error log, which receives the backend's FastCGI
// stderr (AH01071), is dir/error.log; Apache's own stderr goes to
// dir/stderr.log. No access log is written. ProxyFCGIBackendType keeps its
// default, FPM.
//
// ctx bounds only the start; call [Server.Stop] when done.
func StartApacheProxyFCGI(ctx context.Context, dir string, cfg ApacheProxyFCGIConfig) (*Server, error) {
	if !pathInfoValue.MatchString(cfg.PathInfo) {
		return nil, fmt.Errorf("peers: PathInfo %q is not a word such as first-dot", cfg.PathInfo)
	}
	return startApacheProxy(ctx, dir, apacheProxySite{
		scheme: "fcgi", backend: cfg.Backend, backendPath: cfg.BackendPath, env: cfg.Env, maxWorkers: cfg.MaxWorkers,
		proxy: apacheProxy{prefix: cfg.Prefix, pathInfo: cfg.PathInfo,
			enableReuse: cfg.EnableReuse, flushPackets: cfg.FlushPackets, sendCL: cfg.SendCL},
	})
}

// pathInfoValue matches the values ApacheProxyFCGIConfig.PathInfo accepts.
var pathInfoValue = regexp.MustCompile(`^[A-Za-z0-9_-]*$`)

// apacheProxySite is what StartApacheProxyFCGI and StartApacheProxySCGI
// pass to startApacheProxy.
type apacheProxySite struct {
	scheme      string // "fcgi" or "scgi": mod_proxy_fcgi or mod_proxy_scgi
	backend     string // the Backend field, in fastcgi_pass syntax
	backendPath string // the path of the backend URL; if empty, the prefix
	env         map[string]string
	maxWorkers  int
	// proxy holds the Prefix field (empty for "/") and the options of the
	// rule; the scheme and target are filled in from the fields above.
	proxy apacheProxy
}

// startApacheProxy checks site, that Apache's user can reach a unix
// socket backend, prepares dir and starts Apache proxying site.proxy.prefix
// to the backend.
func startApacheProxy(ctx context.Context, dir string, site apacheProxySite) (*Server, error) {
	bin, err := Lookup("apache2")
	if err != nil {
		return nil, err
	}
	be, err := parseBackend("Backend", site.backend, false)
	if err != nil {
		return nil, err
	}
	px := site.proxy
	px.scheme = site.scheme
	px.prefix = cmp.Or(px.prefix, "/")
	path := cmp.Or(site.backendPath, px.prefix)
	for _, f := range [][2]string{{"Prefix", px.prefix}, {"BackendPath", path}} {
		what, s := f[0], f[1]
		if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \t|?#") {
			return nil, fmt.Errorf("peers: %s %q does not start with '/' or contains a space, '|', '?' or '#'", what, s)
		}
		if err := checkConfigString(what, s); err != nil {
			return nil, err
		}
	}
	if px.prefix == apacheReadyPath {
		return nil, fmt.Errorf("peers: Prefix %q is reserved", px.prefix)
	}
	px.target = be.proxyURL(site.scheme, path)
	modules := []string{"proxy", "proxy_" + site.scheme}
	if px.pathInfo != "" {
		modules = append(modules, "setenvif")
	}
	moduleDir, err := findApacheModuleDir(modules...)
	if err != nil {
		return nil, err
	}
	if err := checkEnv(site.env); err != nil {
		return nil, err
	}
	account, err := apacheAccount()
	if err != nil {
		return nil, err
	}
	if account != nil && be.network == "unix" {
		if err := checkCanConnect(account, be.address); err != nil {
			return nil, fmt.Errorf("%w; Apache connects to the backend as %s", err, account.Username)
		}
	}
	return startApacheSite(ctx, bin, dir, apacheParams{moduleDir: moduleDir, modules: apacheModules(modules...),
		env: site.env, maxWorkers: site.maxWorkers, proxy: &px}, nil)
}
