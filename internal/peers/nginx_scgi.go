package peers

import (
	"context"
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

// site returns the nginx site of cfg for the backend be.
func (cfg *NginxSCGIConfig) site(be backend) nginxSite {
	s := nginxSite{module: "scgi", locations: cfg.Locations, pass: quote(be.String()),
		params: withParams(stockParams(scgiParams, "scgi_param"), cfg.Params)}
	if cfg.NoBuffering {
		s.after = []string{"scgi_buffering off;"}
	}
	return s
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
	be, err := checkNginxSite(cfg.Backend, cfg.Locations, cfg.Params)
	if err != nil {
		return nil, err
	}
	return startNginxSite(ctx, dir, cfg.Root, cfg.site(be))
}
