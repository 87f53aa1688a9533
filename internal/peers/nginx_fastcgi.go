package peers

import (
	"context"
	"fmt"
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

// nginxUpstream names the upstream block used with KeepAlive.
const nginxUpstream = "ferry_backend"

// site returns the nginx site of cfg for the backend be.
func (cfg *NginxFastCGIConfig) site(be backend) nginxSite {
	params := stockParams(fastcgiParams, "fastcgi_param")
	params = append(params, configParam{"SCRIPT_FILENAME", "$document_root$fastcgi_script_name"})
	s := nginxSite{module: "fastcgi", locations: cfg.Locations, pass: quote(be.String())}
	if re := cfg.SplitPathInfo; re != "" {
		params = append(params, configParam{"PATH_INFO", "$fastcgi_path_info"})
		s.before = []string{fmt.Sprintf("fastcgi_split_path_info %s;", quote(re))}
	}
	s.params = withParams(params, cfg.Params)
	if n := cfg.KeepAlive; n > 0 {
		s.upstream = []string{
			fmt.Sprintf("upstream %s {", nginxUpstream),
			fmt.Sprintf("  server %s;", s.pass),
			fmt.Sprintf("  keepalive %d;", n),
			"}",
		}
		s.pass = nginxUpstream
		s.after = []string{"fastcgi_keep_conn on;"}
	}
	return s
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
	be, err := checkNginxSite(cfg.Backend, cfg.Locations, cfg.Params)
	if err != nil {
		return nil, err
	}
	if cfg.KeepAlive < 0 {
		return nil, fmt.Errorf("peers: KeepAlive %d is negative", cfg.KeepAlive)
	}
	// A regular expression ends in '$' more often than not; nginx does not
	// expand variables in fastcgi_split_path_info.
	if err := checkConfigString("SplitPathInfo", strings.ReplaceAll(cfg.SplitPathInfo, "$", "")); err != nil {
		return nil, err
	}
	return startNginxSite(ctx, dir, cfg.Root, cfg.site(be))
}
