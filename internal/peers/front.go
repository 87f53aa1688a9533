package peers

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ApacheFrontConfig configures [StartApacheFront].
type ApacheFrontConfig struct {
	// Conf is the site, in httpd.conf syntax, appended to the generated
	// configuration: such as the front.conf ferry migrate writes, with
	// ProxyPass rules to ferry's FastCGI listener. It is required.
	Conf string
	// Modules are modules the site needs besides the common ones and
	// proxy, proxy_fcgi and headers, which are always loaded (such as
	// "access_compat" for Order and Deny).
	Modules []string
}

// StartApacheFront starts Apache httpd (event MPM) on a free 127.0.0.1
// port with cfg.Conf as its site: the web server a migration leaves in
// front of ferry. httpd.conf, the pid file and the logs go into dir, as in
// [StartApacheCGI]. The readiness check fetches /ferry-peers-ready, which
// Apache serves from its own htdocs: cfg.Conf must not hand that path to
// a backend.
//
// ctx bounds only the start; call [Server.Stop] when done.
func StartApacheFront(ctx context.Context, dir string, cfg ApacheFrontConfig) (*Server, error) {
	if strings.TrimSpace(cfg.Conf) == "" {
		return nil, fmt.Errorf("peers: ApacheFrontConfig.Conf is empty")
	}
	bin, err := Lookup("apache2")
	if err != nil {
		return nil, err
	}
	modules := append([]string{"proxy", "proxy_fcgi", "headers"}, cfg.Modules...)
	moduleDir, err := findApacheModuleDir(modules...)
	if err != nil {
		return nil, err
	}
	return startApacheSite(ctx, bin, dir, apacheParams{moduleDir: moduleDir, modules: apacheModules(modules...)},
		func(int) string { return "# The site.\n" + cfg.Conf })
}

// NginxFrontConfig configures [StartNginxFront].
type NginxFrontConfig struct {
	// Server is the body of the server block, in nginx.conf syntax: such
	// as the location blocks of the front.conf ferry migrate writes, with
	// fastcgi_pass to ferry's FastCGI listener. It is required. An
	// "include fastcgi_params;" in it reads nginx's stock fastcgi_params,
	// written into the server's directory.
	Server string
	// Root is the server's root. If empty, an empty directory in the
	// server's directory.
	Root string
	// WorkerConnections is nginx's worker_connections: the connections its
	// one worker holds at once, clients' and backends'. If zero, 1024.
	WorkerConnections int
	// HTTP holds directives of the http block, before the server block,
	// in nginx.conf syntax: upstream blocks the server passes to. If
	// empty, none.
	HTTP string
}

// StartNginxFront starts nginx on a free 127.0.0.1 port with one server
// block holding cfg.Server: the web server a migration leaves in front of
// ferry. nginx.conf, the pid file and the logs go into dir, as in
// [StartNginxFcgiwrap]; nginx's workers run as root when started by root,
// so they can reach any socket. The readiness check fetches
// /ferry-peers-ready, which nginx answers itself (204).
//
// ctx bounds only the start; call [Server.Stop] when done.
func StartNginxFront(ctx context.Context, dir string, cfg NginxFrontConfig) (*Server, error) {
	if strings.TrimSpace(cfg.Server) == "" {
		return nil, fmt.Errorf("peers: NginxFrontConfig.Server is empty")
	}
	bin, err := Lookup("nginx")
	if err != nil {
		return nil, err
	}
	if dir, err = prepareNginxDir(dir); err != nil {
		return nil, err
	}
	root, err := defaultRoot(dir, cfg.Root)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "fastcgi_params"), []byte(fastcgiParams), 0o644); err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	asRoot := os.Geteuid() == 0
	return startNginx(ctx, bin, dir, readyPath, func(port int) string {
		var b strings.Builder
		w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
		nginxHeader(w, dir, asRoot, cfg.WorkerConnections)
		if cfg.HTTP != "" {
			w("%s", cfg.HTTP)
		}
		w("  server {")
		w("    listen 127.0.0.1:%d;", port)
		w("    server_name localhost;")
		w("    root %s;", quote(root))
		w("    location = %s { return 204; }", readyPath)
		b.WriteString(cfg.Server)
		w("\n  }")
		w("}")
		return b.String()
	})
}
