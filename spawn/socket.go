package spawn

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/ferrygw/ferry/internal/ownertemp"
)

// socketDirPrefix begins the name of a socket's private directory, which
// goes on with ferry's pid and start time (package ownertemp).
const socketDirPrefix = "ferry-spawn-"

// removeStale removes the socket directories that ferrys gone left in
// TempDir (killed with SIGKILL, or crashed, they could not).
func (p *Pool) removeStale() {
	removed, err := ownertemp.RemoveStale(p.TempDir, socketDirPrefix)
	for _, dir := range removed {
		p.log().Info().Str("dir", dir).Msg("spawn: removed the socket directory of a ferry no longer running")
	}
	if err != nil { // another user's: theirs to remove
		p.log().Debug().Err(err).Msg("spawn: stale socket directories left")
	}
}

// maxSocketPath is the longest socket path: sun_path is 108 bytes on
// Linux, 104 on the BSDs, with the terminating NUL.
const maxSocketPath = 103

// listen creates the listening socket in a private directory. The workers
// get it in blocking mode: O_NONBLOCK belongs to the socket, shared by
// every descriptor of it, and php-cgi gives up when accept fails with
// EAGAIN. The pool itself never accepts on it.
func (p *Pool) listen() error {
	p.removeStale()
	dir, err := ownertemp.Create(p.TempDir, socketDirPrefix)
	if err != nil {
		return fmt.Errorf("spawn: creating the socket directory: %w", err)
	}
	p.mu.Lock()
	p.dir = dir // mode 0700: only ferry's user can connect
	p.mu.Unlock()
	sock := filepath.Join(dir.Path(), "worker.sock")
	if len(sock) > maxSocketPath {
		return fmt.Errorf("spawn: socket path %s is longer than %d bytes: set a shorter TempDir", sock, maxSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("spawn: listening on %s: %w", sock, err)
	}
	ln.SetUnlinkOnClose(false) // the directory goes in Stop
	f, err := ln.File()
	ln.Close() // f holds the socket now
	if err != nil {
		return fmt.Errorf("spawn: listening on %s: %w", sock, err)
	}
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return fmt.Errorf("spawn: listening on %s: %w", sock, err)
	}
	p.mu.Lock()
	p.sock, p.lsock = sock, f
	p.mu.Unlock()
	return nil
}

// handOff gives cmd the listening socket on descriptor ListenFD: stdin,
// or an extra file after stderr (entries before it stay closed). Called
// under p.mu.
func (p *Pool) handOff(cmd *exec.Cmd) {
	if p.ListenFD == 0 {
		cmd.Stdin = p.lsock // FCGI_LISTENSOCK_FILENO
		return
	}
	cmd.ExtraFiles = make([]*os.File, p.ListenFD-2)
	cmd.ExtraFiles[p.ListenFD-3] = p.lsock
}

// cleanup closes the socket and the guards' pipe, and removes the
// socket's directory.
func (p *Pool) cleanup() {
	p.cleaned.Do(func() {
		p.mu.Lock()
		f, dir := p.lsock, p.dir
		p.mu.Unlock()
		if f != nil {
			f.Close()
		}
		p.closeGuards()
		if dir != nil {
			path := dir.Path()
			if err := dir.Remove(); err != nil {
				p.log().Warn().Err(err).Str("dir", path).Msg("spawn: removing the socket directory")
			}
		}
	})
}
