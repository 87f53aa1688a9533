package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/bridge"
	"github.com/ferrygw/ferry/internal/sdnotify"
	"github.com/rs/zerolog"
)

// upgradeTimeout bounds the wait for the new process of an upgrade to
// listen.
const upgradeTimeout = time.Minute

// controller does what ferry serve does around bridge.Server.Run: it
// answers SIGHUP (reload) and SIGUSR2 (upgrade) once ferry listens, and
// tells systemd how the service is through $NOTIFY_SOCKET: READY=1 once
// it listens, RELOADING=1 and READY=1 around a reload, STOPPING=1 when it
// shuts down, WATCHDOG=1 at half $WATCHDOG_USEC, and MAINPID= when an
// upgrade hands the service to a new process.
type controller struct {
	srv  *bridge.Server
	log  zerolog.Logger
	load func() (bridge.Config, error) // the configuration as serve was started with, read again
	// locate, if set, turns the error of applying what load returned into
	// one naming where each mistake was given (serveFlags.locate).
	locate   func(bridge.Config, error) error
	takeover bool // this process replaces another, which told systemd it is ready
	notify   *sdnotify.Notifier

	listening chan struct{} // closed by ready
	done      chan struct{} // closed by stopped
	mu        sync.Mutex    // guards handed
	handed    bool          // an upgrade handed the service over: the new process speaks to systemd
}

func newController(srv *bridge.Server, log zerolog.Logger, takeover bool, load func() (bridge.Config, error)) *controller {
	return &controller{srv: srv, log: log, load: load, takeover: takeover, notify: sdnotify.FromEnv(),
		listening: make(chan struct{}), done: make(chan struct{})}
}

// send notifies systemd, unless the service has been handed over.
func (c *controller) send(assignments ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handed {
		return
	}
	if err := c.notify.Notify(assignments...); err != nil {
		c.log.Warn().Err(err).Msg("ferry: telling systemd")
	}
}

// ready is Run's: ferry listens. A process that replaces another does not
// say READY=1: the service is ready already, and the one it replaces
// names it the main process (MAINPID=) once it hears it listens.
func (c *controller) ready([]net.Listener) {
	if !c.takeover {
		c.send("READY=1", "STATUS=serving")
	}
	close(c.listening)
}

// listened reports whether Run got as far as listening.
func (c *controller) listened() bool {
	select {
	case <-c.listening:
		return true
	default:
		return false
	}
}

// stopped is called once Run has returned.
func (c *controller) stopped() { close(c.done) }

// run answers the signals until Run returns; file is the configuration
// file serve was started with, if any. It also says STOPPING=1 once ctx
// (SIGINT, SIGTERM) ends, and keeps the watchdog fed.
func (c *controller) run(ctx context.Context, sigs <-chan os.Signal, file string) {
	stopNotify := context.AfterFunc(ctx, func() { c.send("STOPPING=1", "STATUS=shutting down") })
	defer stopNotify()
	select {
	case <-c.listening:
	case <-c.done:
		return
	}
	if every, err := sdnotify.WatchdogInterval(); err != nil {
		c.log.Warn().Err(err).Msg("ferry: systemd watchdog")
	} else if every > 0 && c.notify.Enabled() {
		go c.watchdog(every)
	}
	for {
		select {
		case <-c.done:
			return
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				c.reload(file)
			case syscall.SIGUSR2:
				c.upgrade()
			}
		}
	}
}

// watchdog sends WATCHDOG=1 every interval until Run returns or the
// service is handed over.
func (c *controller) watchdog(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.send("WATCHDOG=1")
		}
	}
}

// reload reads the configuration again and applies it; if it cannot be
// loaded or built, the configuration in force stays and the log says why,
// one line per mistake.
func (c *controller) reload(file string) {
	c.send(sdnotify.Reloading()...)
	if file == "" {
		c.log.Info().Msg("ferry: SIGHUP: no configuration file; reloading the flags' configuration")
	} else {
		c.log.Info().Str("config", file).Msg("ferry: SIGHUP: reloading the configuration")
	}
	cfg, err := c.load()
	if err == nil {
		if err = c.srv.Reload(cfg); err != nil && c.locate != nil {
			err = c.locate(cfg, err)
		}
	}
	if err != nil {
		errs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			errs = j.Unwrap()
		}
		for _, e := range errs {
			c.log.Error().Err(e).Msg("ferry: reload failed; serving on with the configuration in force")
		}
		c.send("READY=1", "STATUS=serving; the last reload failed: "+strings.ReplaceAll(errs[0].Error(), "\n", " "))
		return
	}
	c.send("READY=1", "STATUS=serving")
}

// upgrade starts this ferry's binary again, with the same arguments, and
// hands it the service ([bridge.Server.Upgrade]). On success Run drains
// and returns; the new process gets $WATCHDOG_USEC, and becomes systemd's
// main process.
func (c *controller) upgrade() {
	exe, err := os.Executable() // the path, even when the binary there was replaced since
	if err != nil {
		c.log.Error().Err(err).Msg("ferry: upgrade failed; serving on")
		return
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	// The watchdog is the new process's: WATCHDOG_PID would name this one.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "WATCHDOG_PID=") })
	c.log.Info().Str("binary", exe).Msg("ferry: SIGUSR2: upgrading")
	ctx, cancel := context.WithTimeout(context.Background(), upgradeTimeout)
	defer cancel()
	if err := c.srv.Upgrade(ctx, cmd); err != nil {
		c.log.Error().Err(err).Msg("ferry: upgrade failed; serving on")
		return
	}
	c.send("MAINPID="+strconv.Itoa(cmd.Process.Pid), "STATUS=handed over to pid "+strconv.Itoa(cmd.Process.Pid))
	c.mu.Lock()
	c.handed = true
	c.mu.Unlock()
}

const reloadUsage = `Usage: ferry reload [--pid-file FILE | --config FILE] [--upgrade]

Tell the running ferry serve to read its configuration file again and apply it,
as SIGHUP does: fronts that stay keep their sockets (no connection is refused),
mounts switch for new requests while those in progress finish, worker pools
whose settings changed are replaced once their requests are over. A file that
does not load leaves the running configuration as it is; ferry's log says why
and what changed.

With --upgrade, replace the running ferry with a new process of its binary, as
SIGUSR2 does: the new process takes the listening sockets over, and the old one
drains and exits once the new one listens.

The running ferry is the process in the pid file: --pid-file FILE, or the
pid_file of --config FILE (which is loaded, and must load, as serve would load
it). A process there that is not a ferry (a stale pid file whose process ID
another program now has) is not signalled. The exit status is 1 when no ferry
runs there, 2 for a bad flag or file.
`

// reload is the ferry reload command: it signals the ferry serve whose pid
// file the flags name.
func reload(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags()
	g := newGroup("Reload")
	upgrade := g.fs.Bool("upgrade", false, "replace the running ferry with a new process of its binary (SIGUSR2)")
	cfg, _, code, ok := f.parse("reload", reloadUsage, &g, "", args, stdout, stderr)
	if !ok {
		return code
	}
	if cfg.PIDFile == "" {
		fmt.Fprintln(stderr, "ferry reload: no pid file: give --pid-file FILE, or --config FILE with pid_file set (see ferry reload --help)")
		return 2
	}
	sig, what := syscall.SIGHUP, "reload (SIGHUP); its log says what changed"
	if *upgrade {
		sig, what = syscall.SIGUSR2, "upgrade (SIGUSR2); the pid file names the new process once it serves"
	}
	pid, err := signalPIDFile(cfg.PIDFile, sig)
	if err != nil {
		fmt.Fprintf(stderr, "ferry reload: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "ferry reload: asked ferry (pid %d) to %s\n", pid, what)
	return 0
}

// signalPIDFile sends sig to the process whose ID the pid file holds.
func signalPIDFile(path string, sig syscall.Signal) (int, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("no ferry is running: %s does not exist", path)
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s holds %q, not a process ID", path, strings.TrimSpace(string(b)))
	}
	if runs, ok := isFerry(pid); !ok {
		// A stale pid file whose PID another program has now: SIGHUP
		// would kill it (a shell, a sleep).
		return 0, fmt.Errorf("process %d (from %s) is not a ferry: it runs %s; not signalling it (a stale pid file?)", pid, path, runs)
	}
	switch err := syscall.Kill(pid, sig); {
	case errors.Is(err, syscall.ESRCH):
		return 0, fmt.Errorf("no ferry is running: process %d (from %s) does not exist", pid, path)
	case err != nil:
		return 0, fmt.Errorf("signalling process %d (from %s): %w", pid, path, err)
	}
	return pid, nil
}

// isFerry reports whether process pid runs ferry, as /proc tells: this
// binary, or one whose name has "ferry" in it (another build, an
// upgrade's); if not, runs is what it runs. Without /proc (not Linux),
// or with no process pid (which signalling it then says), it reports
// true: there is nothing to check.
func isFerry(pid int) (runs string, ok bool) {
	if _, err := os.Stat("/proc/self/exe"); err != nil {
		return "", true
	}
	proc := "/proc/" + strconv.Itoa(pid)
	if _, err := os.Stat(proc); errors.Is(err, os.ErrNotExist) {
		return "", true
	}
	if exe, err := os.Readlink(proc + "/exe"); err == nil {
		// A binary replaced since it started (a package upgrade) reads
		// "PATH (deleted)"; it is still the file this process runs.
		exe = strings.TrimSuffix(exe, " (deleted)")
		if self, err := os.Executable(); err == nil {
			a, errA := os.Stat(proc + "/exe")
			b, errB := os.Stat(self)
			if errA == nil && errB == nil && os.SameFile(a, b) {
				return exe, true
			}
		}
		return exe, strings.Contains(filepath.Base(exe), "ferry")
	}
	// Another user's process (ferry reload not run as root): its
	// command line is readable, its executable is not.
	b, _ := os.ReadFile(proc + "/cmdline")
	argv0, _, _ := strings.Cut(string(b), "\x00")
	if argv0 == "" {
		comm, _ := os.ReadFile(proc + "/comm")
		return fmt.Sprintf("%q (no command line)", strings.TrimSpace(string(comm))), false
	}
	return argv0, strings.Contains(filepath.Base(argv0), "ferry")
}
