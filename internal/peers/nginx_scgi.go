package peers

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// NginxSCGIConfig configures [StartNginxSCGI].
type NginxSCGIConfig struct {
	// Backend is the SCGI application, in scgi_pass syntax:
	// "127.0.0.1:4000" or "unix:/path/app.sock". It is required. When
	// started as root, nginx's workers run as root and can use any socket.
	Backend string
	// Locations are the URL path prefixes passed to the backend (plain
	// prefix locations, such as "/cgi-bin/"). Other paths get 404 from
	// nginx. If empty, "/" is used: everything goes to the backend, except
	// /ferry-peers-ready, which nginx answers itself for the readiness check.
	Locations []string
	// Params are extra scgi_param lines, sent after the stock ones. A name
	// that is also a stock parameter (see the package's scgi_params)
	// replaces it instead of being sent twice. Values are literal: they
	// must not contain '$' (nginx variables) or control characters.
	Params map[string]string
	// Root is nginx's root: DOCUMENT_ROOT. If empty, an empty directory in
	// the server's Dir is used.
	Root string
	// NoBuffering turns response buffering off (scgi_buffering off): the
	// backend's output goes to the client as it arrives. If false, nginx's
	// default: output is read into buffers (and a temporary file), and
	// a backend can still ask for streaming with "X-Accel-Buffering: no".
	NoBuffering bool
}

// scgiParams is nginx's stock conf/scgi_params (nginx 1.22). nginx itself
// sends CONTENT_LENGTH first; SCGI=1 comes from this file. Debian's copy
// in /etc/nginx adds "scgi_param HTTP_HOST $host;", which drops the port
// from HTTP_HOST and sends HTTP_HOST twice; upstream's is used here.
const scgiParams = `
scgi_param  REQUEST_METHOD     $request_method;
scgi_param  REQUEST_URI        $request_uri;
scgi_param  QUERY_STRING       $query_string;
scgi_param  CONTENT_TYPE       $content_type;

scgi_param  DOCUMENT_URI       $document_uri;
scgi_param  DOCUMENT_ROOT      $document_root;
scgi_param  SCGI               1;
scgi_param  SERVER_PROTOCOL    $server_protocol;
scgi_param  REQUEST_SCHEME     $scheme;
scgi_param  HTTPS              $https if_not_empty;

scgi_param  REMOTE_ADDR        $remote_addr;
scgi_param  REMOTE_PORT        $remote_port;
scgi_param  SERVER_PORT        $server_port;
scgi_param  SERVER_NAME        $server_name;
`

// configParam is a *_param line of nginx: a name and nginx's raw value text.
type configParam struct{ name, value string }

// stockParams returns the lines of text starting with directive, in order.
func stockParams(text, directive string) []configParam {
	var ps []configParam
	for line := range strings.Lines(text) {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
		if len(f) >= 3 && f[0] == directive {
			ps = append(ps, configParam{f[1], strings.Join(f[2:], " ")})
		}
	}
	return ps
}

// withParams returns ps with extra appended, in name order, values
// replacing those of lines of the same name.
func withParams(ps []configParam, extra map[string]string) []configParam {
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		v := quote(extra[k])
		if i := slices.IndexFunc(ps, func(q configParam) bool { return q.name == k }); i >= 0 {
			ps[i].value = v
		} else {
			ps = append(ps, configParam{k, v})
		}
	}
	return ps
}

// nginxSCGIParams is what goes into the nginx.conf of [StartNginxSCGI].
type nginxSCGIParams struct {
	dir, root string
	port      int
	asRoot    bool
	backend   backend
	cfg       *NginxSCGIConfig
}

// nginxSCGIConfig renders a self-contained nginx.conf; it includes nothing from /etc.
func nginxSCGIConfig(p nginxSCGIParams) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	nginxHeader(w, p.dir, p.asRoot)
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
	params := withParams(stockParams(scgiParams, "scgi_param"), p.cfg.Params)
	width := 0
	for _, q := range params {
		width = max(width, len(q.name))
	}
	for _, loc := range locations {
		w("    location %s {", quote(loc))
		for _, q := range params {
			w("      scgi_param  %-*s  %s;", width, q.name, q.value)
		}
		w("      scgi_pass %s;", quote(p.backend.String()))
		if p.cfg.NoBuffering {
			w("      scgi_buffering off;")
		}
		w("      scgi_read_timeout 60s;")
		w("    }")
	}
	w("  }")
	w("}")
	return b.String()
}

// checkLocations validates the Locations of a config.
func checkLocations(locations []string) error {
	seen := make(map[string]bool)
	for _, loc := range locations {
		if !strings.HasPrefix(loc, "/") || loc == readyPath {
			return fmt.Errorf("peers: location %q does not start with '/' or is reserved", loc)
		}
		if err := checkConfigString("location", loc); err != nil {
			return err
		}
		if seen[loc] {
			return fmt.Errorf("peers: duplicate location %q", loc)
		}
		seen[loc] = true
	}
	return nil
}

// defaultRoot returns root as an absolute path, or a new empty htdocs
// directory in dir when root is empty.
func defaultRoot(dir, root string) (string, error) {
	if root == "" {
		root = filepath.Join(dir, "htdocs")
		if err := os.MkdirAll(root, 0o755); err != nil {
			return "", fmt.Errorf("peers: %w", err)
		}
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return "", fmt.Errorf("peers: Root: %w", err)
	}
	return root, checkConfigString("Root", root)
}

// StartNginxSCGI starts nginx on a free 127.0.0.1 port in front of the SCGI
// application at cfg.Backend, which the caller runs (ferry's scgi.Server,
// uwsgi --scgi-socket from [StartUWSGI], ...). The backend need not be up
// yet: nginx connects on the first request, one connection per request
// (SCGI has no keep-alive). nginx.conf, the pid file, the temporary
// directories and the logs go into dir, which should be empty; the error
// log is dir/error.log, nginx's own stderr dir/nginx.stderr.log. No access
// log is written.
//
// The parameters are nginx's stock scgi_params (HTTP_HOST is the Host
// header as sent, unlike Debian's copy), then cfg.Params; nginx adds
// CONTENT_LENGTH first and the request headers as HTTP_*. Request bodies
// are buffered before the backend is called (scgi_request_buffering), so
// a chunked body arrives with its length.
//
// ctx bounds only the start; call [Server.Stop] when done.
func StartNginxSCGI(ctx context.Context, dir string, cfg NginxSCGIConfig) (*Server, error) {
	bin, err := Lookup("nginx")
	if err != nil {
		return nil, err
	}
	be, err := parseBackend("Backend", cfg.Backend, false)
	if err != nil {
		return nil, err
	}
	if err := checkLocations(cfg.Locations); err != nil {
		return nil, err
	}
	if err := checkEnv(cfg.Params); err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	if err := checkConfigString("directory", dir); err != nil {
		return nil, err
	}
	root, err := defaultRoot(dir, cfg.Root)
	if err != nil {
		return nil, err
	}
	if err := prepareNginxDir(dir); err != nil {
		return nil, err
	}
	asRoot := os.Geteuid() == 0
	return startNginx(ctx, bin, dir, nginxReadyPath, func(port int) string {
		return nginxSCGIConfig(nginxSCGIParams{dir: dir, root: root, port: port, asRoot: asRoot, backend: be, cfg: &cfg})
	})
}
