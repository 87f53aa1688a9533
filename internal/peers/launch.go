package peers

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// What every Start function does: prepare its directory, write the
// configuration, start the program, and try another port if the one it was
// given was taken meanwhile.

// errorLogName is the error log of a generated web server configuration,
// in the server's directory.
const errorLogName = "error.log"

// workDir returns dir as an absolute path that a configuration file can
// hold (see checkConfigString), after creating it and the given
// subdirectories (relative to it).
func workDir(dir string, subdirs ...string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("peers: %w", err)
	}
	if err := checkConfigString("directory", dir); err != nil {
		return "", err
	}
	for _, d := range append([]string{"."}, subdirs...) {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", fmt.Errorf("peers: %w", err)
		}
	}
	return dir, nil
}

// positiveOr returns v if it is positive, def otherwise.
func positiveOr[T cmp.Ordered](v, def T) T {
	var zero T
	if v > zero {
		return v
	}
	return def
}

// startConfigured writes text to the configuration file conf (unless conf
// is empty), removes the logs that an earlier attempt left, and starts
// spec.
func startConfigured(ctx context.Context, spec Spec, conf, text string) (*Process, error) {
	if conf != "" {
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("peers: %w", err)
		}
	}
	if err := removeFiles(append([]string{spec.LogFile}, spec.ErrorLogs...)...); err != nil {
		return nil, err
	}
	return Start(ctx, spec)
}

// webServer is a web server for [startWebServer].
type webServer struct {
	bin, dir string                // the program, and its absolute working directory
	conf     string                // the configuration file, in dir
	config   func(port int) string // the configuration for a port
	args     []string              // the command line after the program name
	// stderrLog is the file in dir that gets the program's stdout and
	// stderr; the configuration names dir/error.log as the error log.
	stderrLog string
	// readyPath is the URL path the readiness check fetches, which the
	// server must answer itself.
	readyPath string
}

// startWebServer writes the configuration of w for a free 127.0.0.1 port
// and starts w in the foreground, trying another port if the one chosen
// was taken meanwhile. The returned Server holds only w's process.
func startWebServer(ctx context.Context, w webServer) (*Server, error) {
	errorLog := filepath.Join(w.dir, errorLogName)
	stderrLog := filepath.Join(w.dir, w.stderrLog)
	logs := []string{errorLog, stderrLog}
	return retryPort(ctx, logs, func(port int) (*Server, error) {
		url := loopbackURL(port)
		p, err := startConfigured(ctx, Spec{
			Path:      w.bin,
			Args:      w.args,
			Dir:       w.dir,
			LogFile:   stderrLog,
			ErrorLogs: []string{errorLog},
			ReadyHTTP: url + w.readyPath,
		}, w.conf, w.config(port))
		if err != nil {
			return nil, err
		}
		return &Server{URL: url, Dir: w.dir, procs: []*Process{p}, errLogs: logs}, nil
	})
}

// listenOn calls start with addr or, when addr is a TCP address with port
// 0, with a free port of its host instead, retried as in retryPort.
func listenOn[T any](ctx context.Context, addr backend, logs []string, start func(addr backend) (T, error)) (T, error) {
	host, port, err := net.SplitHostPort(addr.address)
	if addr.network != "tcp" || err != nil || port != "0" {
		return start(addr)
	}
	return retryPort(ctx, logs, func(port int) (T, error) {
		return start(backend{network: "tcp", address: net.JoinHostPort(host, strconv.Itoa(port))})
	})
}

// maxStartAttempts is how many ports a Start function tries: a port from
// [FreePort] can be taken by someone else before the server binds it.
const maxStartAttempts = 3

// retryPort calls start with a free port, and again with another one, up
// to maxStartAttempts times, when it fails and the logs say the port was
// taken meanwhile.
func retryPort[T any](ctx context.Context, logs []string, start func(port int) (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		port, err := FreePort()
		if err != nil {
			var zero T
			return zero, err
		}
		s, err := start(port)
		if err == nil || attempt == maxStartAttempts || ctx.Err() != nil || !addrInUse(logs) {
			return s, err
		}
	}
}

// addrInUse reports whether any of the logs says that bind failed because
// the address was in use.
func addrInUse(logs []string) bool {
	for _, path := range logs {
		data, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(data), "Address already in use") {
			return true
		}
	}
	return false
}
