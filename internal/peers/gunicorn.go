package peers

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// GunicornConfig configures [StartGunicorn].
type GunicornConfig struct {
	// App is the WSGI application in Gunicorn's spelling, "module:callable"
	// (such as "mysite.wsgi:application" or "app:app"). It is required.
	App string
	// Chdir is the directory the module is imported from (--chdir). If
	// empty, the server's directory.
	Chdir string
	// Listen is where Gunicorn serves HTTP: "127.0.0.1:PORT" (port 0
	// picks a free port) or "unix:/path/app.sock". If empty, 127.0.0.1 and
	// a free port.
	Listen string
	// Workers is the number of sync worker processes. If zero or
	// negative, 2.
	Workers int
	// Env holds variables set in the workers' environment (--env).
	Env map[string]string
}

// Gunicorn is a started Gunicorn arbiter and its workers.
type Gunicorn struct {
	// Process is the arbiter, leader of the group the workers are in.
	Process *Process
	// URL is the base URL of a TCP listener ("http://127.0.0.1:PORT"),
	// empty for a unix socket.
	URL string
	// Network ("tcp" or "unix") and Address are where it listens, for
	// [net.Dial].
	Network, Address string
	// Dir holds the log.
	Dir string

	errLogs []string
}

// Logs returns Gunicorn's log: its own messages and the application's
// stderr.
func (g *Gunicorn) Logs() (string, error) { return readLogs(g.errLogs) }

// Stop stops the arbiter and its workers (see [Process.Stop]). It is
// idempotent and safe to register with [testing.TB.Cleanup].
func (g *Gunicorn) Stop() error { return g.Process.Stop() }

// StartGunicorn starts Gunicorn (Debian's gunicorn, sync workers) serving
// cfg.App over HTTP. Its log is dir/gunicorn.log; access logging is off.
//
// ctx bounds only the start; call [Gunicorn.Stop] when done.
func StartGunicorn(ctx context.Context, dir string, cfg GunicornConfig) (*Gunicorn, error) {
	bin, err := Lookup("gunicorn")
	if err != nil {
		return nil, err
	}
	if cfg.App == "" || strings.ContainsAny(cfg.App, " \t") {
		return nil, fmt.Errorf("peers: Gunicorn App %q: want module:callable", cfg.App)
	}
	if err := checkEnv(cfg.Env); err != nil {
		return nil, err
	}
	if dir, err = workDir(dir); err != nil {
		return nil, err
	}
	chdir := cfg.Chdir
	if chdir == "" {
		chdir = dir
	}
	if chdir, err = filepath.Abs(chdir); err != nil {
		return nil, fmt.Errorf("peers: Chdir: %w", err)
	}
	listen := cfg.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	be, err := parseBackend("Listen", listen, true)
	if err != nil {
		return nil, err
	}
	log := filepath.Join(dir, "gunicorn.log")
	return listenOn(ctx, be, []string{log}, func(be backend) (*Gunicorn, error) {
		bind := be.address
		if be.network == "unix" {
			bind = "unix:" + be.address
			if err := removeFiles(be.address); err != nil {
				return nil, err
			}
		}
		args := []string{"--bind", bind, "--workers", strconv.Itoa(positiveOr(cfg.Workers, 2)), "--worker-class", "sync",
			"--chdir", chdir, "--log-level", "warning", "--graceful-timeout", "2"}
		for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
			args = append(args, "--env", k+"="+cfg.Env[k])
		}
		spec := Spec{Path: bin, Dir: dir, LogFile: log, Args: append(args, cfg.App)}
		be.setReady(&spec)
		p, err := startConfigured(ctx, spec, "", "")
		if err != nil {
			return nil, err
		}
		g := &Gunicorn{Process: p, Network: be.network, Address: be.address, Dir: dir, errLogs: []string{log}}
		if be.network == "tcp" {
			g.URL = (&url.URL{Scheme: "http", Host: be.address}).String()
		}
		return g, nil
	})
}
