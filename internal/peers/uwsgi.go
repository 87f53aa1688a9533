package peers

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// UWSGIConfig configures [StartUWSGI].
type UWSGIConfig struct {
	// WSGIFile is the Python file holding the WSGI application. It is
	// required.
	WSGIFile string
	// Callable is the name of the application in WSGIFile. If empty,
	// "application", uwsgi's default (a Flask file names it "app").
	Callable string
	// Listen is where uwsgi listens for SCGI: "127.0.0.1:PORT" (port 0
	// picks a free port) or "unix:/path/app.sock". If empty, a unix socket
	// in the server's directory is used.
	Listen string
	// Processes is the number of worker processes. If zero or negative, 2.
	Processes int
	// Mount, if set, is the URL path prefix the application is mounted
	// at, for fronts that send the whole path as PATH_INFO (nginx's
	// scgi_params send none): uwsgi then moves the prefix into SCRIPT_NAME
	// (--mount and --manage-script-name). Behind a front that sends
	// SCRIPT_NAME itself, such as ferry's scgi.Handler, leave it empty.
	Mount string
	// Env holds variables set in the workers' environment (--env).
	Env map[string]string
}

// UWSGI is a started uwsgi master and its workers, serving a WSGI
// application over SCGI.
type UWSGI struct {
	// Process is the master, leader of the group the workers are in.
	Process *Process
	// Listen is the address in nginx's scgi_pass syntax, "127.0.0.1:PORT"
	// or "unix:/path", ready for [NginxSCGIConfig] and the other fronts.
	Listen string
	// Network ("tcp" or "unix") and Address are Listen for [net.Dial].
	Network, Address string
	// Dir holds the socket and the log.
	Dir string

	errLogs []string
}

// Logs returns uwsgi's log: its own messages and the application's stderr.
func (u *UWSGI) Logs() (string, error) { return readLogs(u.errLogs) }

// Stop stops the master and its workers (see [Process.Stop]). It is
// idempotent and safe to register with [testing.TB.Cleanup].
func (u *UWSGI) Stop() error { return u.Process.Stop() }

// uwsgiArgs returns uwsgi's command line for cfg listening on listen.
func uwsgiArgs(cfg *UWSGIConfig, file, listen string) []string {
	args := []string{
		"--plugin", "python3",
		"--scgi-socket", listen,
		"--master", "--processes", strconv.Itoa(positiveOr(cfg.Processes, 2)),
		// SIGTERM stops uwsgi (by default it reloads), and a file that does
		// not load is an error at start, not a 500 for every request.
		"--die-on-term", "--need-app", "--strict",
		"--chdir", filepath.Dir(file),
	}
	if cfg.Callable != "" {
		args = append(args, "--callable", cfg.Callable)
	}
	if cfg.Mount != "" {
		args = append(args, "--mount", cfg.Mount+"="+file, "--manage-script-name")
	} else {
		args = append(args, "--wsgi-file", file)
	}
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		args = append(args, "--env", k+"="+cfg.Env[k])
	}
	return args
}

// StartUWSGI starts uwsgi with its python3 plugin serving the WSGI
// application in cfg.WSGIFile over SCGI (--scgi-socket). uwsgi answers
// SCGI requests with an HTTP status line ("HTTP/1.1 200 OK"), not a CGI
// Status field. Its log (stdout and stderr) is dir/uwsgi.log.
//
// ctx bounds only the start; call [UWSGI.Stop] when done.
func StartUWSGI(ctx context.Context, dir string, cfg UWSGIConfig) (*UWSGI, error) {
	bin, err := Lookup("uwsgi")
	if err != nil {
		return nil, err
	}
	if cfg.WSGIFile == "" {
		return nil, fmt.Errorf("peers: WSGIFile is empty")
	}
	file, err := filepath.Abs(cfg.WSGIFile)
	if err != nil {
		return nil, fmt.Errorf("peers: WSGIFile: %w", err)
	}
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("peers: WSGIFile: %w", err)
	}
	if cfg.Mount != "" && (!strings.HasPrefix(cfg.Mount, "/") || strings.ContainsAny(cfg.Mount, "= \t")) {
		return nil, fmt.Errorf("peers: Mount %q does not start with '/' or contains '=' or a space", cfg.Mount)
	}
	if err := checkEnv(cfg.Env); err != nil {
		return nil, err
	}
	if dir, err = workDir(dir); err != nil {
		return nil, err
	}
	be, err := listenAddress(cfg.Listen, dir, "uwsgi.sock")
	if err != nil {
		return nil, err
	}
	log := filepath.Join(dir, "uwsgi.log")
	return listenOn(ctx, be, []string{log}, func(be backend) (*UWSGI, error) {
		spec := Spec{Path: bin, Dir: dir, LogFile: log, Args: uwsgiArgs(&cfg, file, be.address)}
		be.setReady(&spec)
		if be.network == "unix" {
			if err := removeFiles(be.address); err != nil {
				return nil, err
			}
		}
		p, err := startConfigured(ctx, spec, "", "")
		if err != nil {
			return nil, err
		}
		return &UWSGI{Process: p, Listen: be.String(), Network: be.network, Address: be.address, Dir: dir, errLogs: []string{log}}, nil
	})
}
