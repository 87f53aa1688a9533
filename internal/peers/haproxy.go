package peers

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// HAProxyConfig configures [StartHAProxy].
type HAProxyConfig struct {
	// Config returns haproxy.cfg's text for bind, the "127.0.0.1:PORT"
	// its frontend must listen on ("bind 127.0.0.1:PORT"). It is
	// required; the file must log to stderr, if at all ("log stderr format
	// raw local0"), as HAProxy runs in the foreground.
	Config func(bind string) string
}

// StartHAProxy starts HAProxy in the foreground (-db) with the
// configuration cfg.Config gives for a free 127.0.0.1 port. haproxy.cfg
// and its output (dir/stderr.log) go into dir. It is ready once its
// frontend answers an HTTP request, with any status (503 while no server
// is up).
//
// ctx bounds only the start; call [Server.Stop] when done.
func StartHAProxy(ctx context.Context, dir string, cfg HAProxyConfig) (*Server, error) {
	bin, err := Lookup("haproxy")
	if err != nil {
		return nil, err
	}
	if cfg.Config == nil {
		return nil, fmt.Errorf("peers: HAProxyConfig.Config is nil")
	}
	if dir, err = workDir(dir); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "haproxy.cfg")
	return startWebServer(ctx, webServer{
		bin: bin, dir: dir, conf: conf,
		config: func(port int) string {
			return cfg.Config(strings.TrimPrefix(loopbackURL(port), "http://"))
		},
		args:      []string{"-db", "-f", conf},
		stderrLog: "stderr.log",
		readyPath: readyPath,
	})
}
