package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	defaultReadyTimeout = 10 * time.Second
	defaultStopTimeout  = 5 * time.Second
	// killWait bounds the wait for a process group after SIGKILL.
	killWait = 5 * time.Second
	// zombieWait bounds the wait for dead members of a group to be reaped
	// by their new parent. Under systemd or tini that is immediate; some
	// container inits reap only every second or two, and some never do.
	zombieWait = 3 * time.Second
	// pollInterval is how often readiness and group exit are checked.
	pollInterval = 10 * time.Millisecond
	// logTailSize is how much of each log an error message quotes.
	logTailSize = 2048
)

// Spec describes a program for [Start].
type Spec struct {
	// Path is the program to run. It is used as is; see [Lookup].
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is the environment. If nil, the current process's environment is used.
	Env []string
	// Dir is the working directory. If empty, the current directory is used.
	Dir string
	// LogFile receives the program's stdout and stderr (appended, created
	// 0644 if missing). If empty, both are discarded.
	LogFile string
	// ErrorLogs are further files the program logs to (such as an error log
	// named in its configuration). Their tails, with that of LogFile, are
	// quoted in the error returned when the program does not become ready.
	ErrorLogs []string

	// ReadyTCP, if set, is a host:port that must accept TCP connections.
	ReadyTCP string
	// ReadyUnix, if set, is the path of a unix socket that must accept connections.
	ReadyUnix string
	// ReadyHTTP, if set, is a URL that must answer a GET with any status.
	ReadyHTTP string
	// ReadyTimeout bounds the wait for all the Ready conditions. If zero, 10s is used.
	// With no Ready condition, Start returns as soon as the program has started.
	ReadyTimeout time.Duration

	// StopTimeout is the grace period [Process.Stop] gives the process group
	// after SIGTERM before it sends SIGKILL. If zero, 5s is used.
	StopTimeout time.Duration
}

func (s *Spec) readyTimeout() time.Duration { return positiveOr(s.ReadyTimeout, defaultReadyTimeout) }

func (s *Spec) stopTimeout() time.Duration { return positiveOr(s.StopTimeout, defaultStopTimeout) }

// Process is a started program, leader of its own process group.
type Process struct {
	name  string // base name of the program, for messages
	cmd   *exec.Cmd
	pgid  int
	grace time.Duration
	logs  []string // files quoted in error messages

	done    chan struct{} // closed once waitErr is set, after the leader is reaped
	waitErr error

	stopOnce sync.Once
	stopErr  error
}

// Start runs the program described by spec in a new process group and waits
// until it is ready (see the Ready fields of [Spec]), until ctx is done, or
// until the program exits, whichever comes first. ctx bounds only the start:
// once Start returns, the program runs until [Process.Stop].
//
// If the program does not become ready, Start stops it and returns an error
// that quotes the tail of its logs.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	if err := platformSupported(); err != nil {
		return nil, err
	}
	if spec.Path == "" {
		return nil, errors.New("peers: Spec.Path is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	name := filepath.Base(spec.Path)
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Env = spec.Env
	cmd.Dir = spec.Dir
	cmd.SysProcAttr = newGroupAttr()
	var logs []string
	if spec.LogFile != "" {
		f, err := os.OpenFile(spec.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("peers: %s log: %w", name, err)
		}
		// The child gets its own copy of the descriptor; ours is not needed
		// once it has started.
		defer f.Close()
		cmd.Stdout = f
		cmd.Stderr = f
		logs = append(logs, spec.LogFile)
	}
	logs = append(logs, spec.ErrorLogs...)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("peers: starting %s: %w", name, err)
	}
	p := &Process{
		name:  name,
		cmd:   cmd,
		pgid:  cmd.Process.Pid,
		grace: spec.stopTimeout(),
		logs:  logs,
		done:  make(chan struct{}),
	}
	go p.reap()
	if err := p.waitReady(ctx, &spec); err != nil {
		err = fmt.Errorf("peers: %s (pid %d) not ready: %w", name, p.pgid, err)
		if serr := p.Stop(); serr != nil && !errors.Is(serr, errExitedEarly) {
			err = errors.Join(err, serr)
		}
		return nil, fmt.Errorf("%w%s", err, tailLogs(p.logs))
	}
	return p, nil
}

// reap waits for the leader to exit and records how it ended.
func (p *Process) reap() {
	p.waitErr = p.cmd.Wait()
	close(p.done)
}

// Pid returns the process ID of the program, which is also its process group ID.
func (p *Process) Pid() int { return p.pgid }

// Done returns a channel that is closed when the program (the group leader) has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// errExitedEarly marks a Stop error that only says the process had already died.
var errExitedEarly = errors.New("exited before Stop")

// Stop ends the process group: SIGTERM to every member, SIGKILL after the
// grace period ([Spec.StopTimeout]) to whatever is left, then it waits until
// the leader is reaped and no member of the group is running. Members that
// outlived the leader are reaped by init, not by us; Stop waits up to 3s for
// that to happen too, so that no zombie of the group is left behind. Stop is
// idempotent and safe for concurrent use; later calls return the first
// call's result.
//
// Stop returns an error if the group could not be signalled or did not go
// away, or if the program had already exited on its own with a failure
// status before Stop was called.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

func (p *Process) stop() error {
	var errs []error
	select {
	case <-p.done:
		if p.waitErr != nil {
			errs = append(errs, fmt.Errorf("peers: %s (pid %d) %w: %w", p.name, p.pgid, errExitedEarly, p.waitErr))
		}
		if running, _ := groupState(p.pgid); !running {
			// Nothing left to signal; the group ID may even have been reused.
			return errors.Join(errs...)
		}
	default:
	}
	if err := signalGroup(p.pgid, syscall.SIGTERM); err != nil {
		errs = append(errs, fmt.Errorf("peers: stopping %s: %w", p.name, err))
	}
	if !p.waitGroup(p.grace) {
		if err := signalGroup(p.pgid, syscall.SIGKILL); err != nil {
			errs = append(errs, fmt.Errorf("peers: killing %s: %w", p.name, err))
		}
		if !p.waitGroup(killWait) {
			members, _ := groupMembers(p.pgid)
			errs = append(errs, fmt.Errorf("peers: %s process group %d still running after SIGKILL: %v", p.name, p.pgid, members))
			return errors.Join(errs...)
		}
	}
	// Zombies are dead and cannot be reaped from here, so a slow init is
	// waited for but not reported.
	pollUntil(zombieWait, func() bool {
		_, zombies := groupState(p.pgid)
		return !zombies
	})
	return errors.Join(errs...)
}

// waitGroup waits up to timeout for the leader to be reaped and the rest of
// the group to stop running, and reports whether both happened.
func (p *Process) waitGroup(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
	case <-timer.C:
		return false
	}
	// The other members are not our children: poll for them.
	return pollUntil(time.Until(deadline), func() bool {
		running, _ := groupState(p.pgid)
		return !running
	})
}

// pollUntil calls cond every pollInterval until it returns true or timeout
// passes, and returns cond's last result.
func pollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// waitReady polls the readiness conditions of spec.
func (p *Process) waitReady(ctx context.Context, spec *Spec) error {
	if spec.ReadyTCP == "" && spec.ReadyUnix == "" && spec.ReadyHTTP == "" {
		return nil
	}
	timeout := spec.readyTimeout()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	client := &http.Client{
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
		Timeout:   time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	defer client.CloseIdleConnections()
	for {
		err := checkReady(ctx, client, spec)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last check: %w)", ctx.Err(), err)
		case <-timer.C:
			return fmt.Errorf("timed out after %v: %w", timeout, err)
		case <-p.done:
			return fmt.Errorf("exited during start: %v", p.waitErr)
		case <-tick.C:
		}
	}
}

// checkReady returns nil when every readiness condition of spec holds.
func checkReady(ctx context.Context, client *http.Client, spec *Spec) error {
	var d net.Dialer
	d.Timeout = time.Second
	if spec.ReadyTCP != "" {
		c, err := d.DialContext(ctx, "tcp", spec.ReadyTCP)
		if err != nil {
			return err
		}
		c.Close()
	}
	if spec.ReadyUnix != "" {
		c, err := d.DialContext(ctx, "unix", spec.ReadyUnix)
		if err != nil {
			return err
		}
		c.Close()
	}
	if spec.ReadyHTTP != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, spec.ReadyHTTP, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		// Any status will do; the body is drained only to end the exchange cleanly.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
	}
	return nil
}

// tailLogs formats the end of each readable, non-empty log for an error message.
func tailLogs(paths []string) string {
	var b strings.Builder
	for _, path := range paths {
		t, err := tailFile(path, logTailSize)
		if err != nil || t == "" {
			continue
		}
		fmt.Fprintf(&b, "\n--- tail of %s ---\n%s", path, strings.TrimRight(t, "\n"))
	}
	return b.String()
}

// tailFile returns up to the last n bytes of the file at path.
func tailFile(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := max(fi.Size()-n, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, fi.Size()-off))
	return string(b), err
}

// FreePort returns a TCP port on 127.0.0.1 that was free when it was
// checked. Another process may take it before the caller binds it; the Start
// functions of this package retry with a new port when that happens.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("peers: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
