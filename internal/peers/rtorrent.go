package peers

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
)

// RTorrent is a started rtorrent daemon with its XML-RPC interface on an
// SCGI port: the best-known SCGI application that is not a web framework.
type RTorrent struct {
	// Process is the daemon.
	Process *Process
	// Address is its SCGI port, "127.0.0.1:PORT".
	Address string
	// Dir holds its session directory, home and log.
	Dir string

	logs []string
}

// Logs returns what rtorrent printed.
func (r *RTorrent) Logs() (string, error) { return readLogs(r.logs) }

// Stop stops the daemon (see [Process.Stop]). It is idempotent and safe to
// register with [testing.TB.Cleanup].
func (r *RTorrent) Stop() error { return r.Process.Stop() }

// StartRTorrent starts rtorrent as a daemon (no terminal: -n and
// system.daemon.set) with its SCGI XML-RPC port on 127.0.0.1, a session
// directory, home and log in dir, and no configuration file read. ctx
// bounds only the start; call [RTorrent.Stop] when done.
func StartRTorrent(ctx context.Context, dir string) (*RTorrent, error) {
	bin, err := Lookup("rtorrent")
	if err != nil {
		return nil, err
	}
	if dir, err = workDir(dir); err != nil {
		return nil, err
	}
	log := filepath.Join(dir, "rtorrent.log")
	return retryPort(ctx, []string{log}, func(port int) (*RTorrent, error) {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		p, err := startConfigured(ctx, Spec{
			Path: bin,
			Args: []string{"-n", // no ~/.rtorrent.rc
				"-o", "system.daemon.set=true",
				"-o", "session.path.set=" + dir + "/",
				"-o", "directory.default.set=" + dir,
				"-o", "network.scgi.open_port=" + addr},
			Env:      []string{"HOME=" + dir, "PATH=/usr/bin:/bin"},
			Dir:      dir,
			LogFile:  log,
			ReadyTCP: addr,
		}, "", "")
		if err != nil {
			return nil, err
		}
		return &RTorrent{Process: p, Address: addr, Dir: dir, logs: []string{log}}, nil
	})
}
