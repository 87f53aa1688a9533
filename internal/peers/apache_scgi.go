package peers

import (
	"context"
)

// ApacheProxySCGIConfig configures [StartApacheProxySCGI].
type ApacheProxySCGIConfig struct {
	// Backend is the SCGI application, in nginx's scgi_pass syntax:
	// "127.0.0.1:4000" or "unix:/path/app.sock". It is required. When
	// started as root, Apache connects as www-data, which needs write
	// permission on a unix socket and search permission on its
	// directories; StartApacheProxySCGI checks that if the socket exists.
	Backend string
	// Prefix is the URL path prefix proxied, such as "/cgi-bin/": the rule
	// is "ProxyPass Prefix scgi://Backend/Prefix" (for a unix socket,
	// "unix:/path/app.sock|scgi://localhost/Prefix"). If empty, "/" is
	// used: everything goes to the backend, except /ferry-peers-ready,
	// which Apache serves itself for the readiness check.
	Prefix string
	// PathInfo, if set, makes mod_proxy_scgi send its best guess of
	// PATH_INFO (proxy-scgi-pathinfo, set with SetEnvIf: plain SetEnv comes
	// too late for mod_proxy_scgi). If false, its default: no PATH_INFO,
	// and the whole path as SCRIPT_NAME (RFC 3875 § 3.3 leaves the split
	// to the application).
	PathInfo bool
	// Env holds variables set with SetEnv; mod_proxy_scgi sends them to the
	// backend as headers. Values must not contain '$' or control
	// characters.
	Env map[string]string
	// MaxWorkers caps concurrent requests (MaxRequestWorkers), as in
	// [ApacheCGIConfig]. If zero, Apache's defaults are used.
	MaxWorkers int
}

// StartApacheProxySCGI starts Apache httpd (event MPM) with mod_proxy and
// mod_proxy_scgi on a free 127.0.0.1 port, passing cfg.Prefix to the SCGI
// application at cfg.Backend, which the caller runs. The backend need not
// be up yet. httpd.conf, the pid file and the logs go into dir, which
// should be empty and is made world-readable as in [StartApacheCGI]. The
// error log is dir/error.log; Apache's own stderr goes to dir/stderr.log.
// No access log is written. mod_proxy_scgi keeps its defaults: a local
// "Location" with status 200 is served as an internal redirect
// (ProxySCGIInternalRedirect On), and a request body must come with a
// Content-Length (a chunked one gets 411).
//
// ctx bounds only the start; call [Server.Stop] when done.
func StartApacheProxySCGI(ctx context.Context, dir string, cfg ApacheProxySCGIConfig) (*Server, error) {
	site := apacheProxySite{scheme: "scgi", backend: cfg.Backend, env: cfg.Env, maxWorkers: cfg.MaxWorkers,
		proxy: apacheProxy{prefix: cfg.Prefix}}
	if cfg.PathInfo {
		site.proxy.pathInfo = "1"
	}
	return startApacheProxy(ctx, dir, site)
}
