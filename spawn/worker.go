package spawn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/internal/linelog"
	"github.com/rs/zerolog"
)

// worker is one running worker process.
type worker struct {
	cmd        *exec.Cmd
	pid        int
	start      time.Time
	stderr     *os.File      // read end of the stderr pipe
	stderrDone chan struct{} // closed when the stderr logger returns
	tail       stderrTail    // the end of its stderr, written by the logger
	exited     chan struct{} // closed by wait once it is reaped: state, ran and tail are set
	state      *os.ProcessState
	ran        time.Duration
	stopped    bool // Stop had begun when it exited: it was stopped, it did not fail
}

// errStopping reports that Stop has begun: nothing more is started.
var errStopping = errors.New("spawn: pool stopping")

// spawn starts one worker, unless the pool is stopping. The start happens
// under p.mu, so Stop sees every worker that started.
func (p *Pool) spawn() (*worker, error) {
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("spawn: creating a stderr pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path:        p.Path,
		Args:        append([]string{p.Path}, p.Args...),
		Dir:         p.Dir,
		Stdout:      nil, // /dev/null
		Stderr:      stderrW,
		SysProcAttr: workerProcAttr(p.Credential),
	}
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		stderrR.Close()
		stderrW.Close()
		return nil, errStopping
	}
	p.handOff(cmd)
	cmd.Env = p.env
	err = cmd.Start()
	var guardErr error
	if err == nil {
		p.procs[cmd.Process.Pid] = cmd
		guardErr = p.startGuard(cmd.Process.Pid)
	}
	p.mu.Unlock()
	stderrW.Close() // the worker has its copy; EOF comes when it is gone
	if err != nil {
		stderrR.Close()
		return nil, fmt.Errorf("spawn: starting worker %s: %w", p.Path, err)
	}
	w := &worker{cmd: cmd, pid: cmd.Process.Pid, start: time.Now(), stderr: stderrR, stderrDone: make(chan struct{}), exited: make(chan struct{})}
	p.log().Info().Str("program", p.Path).Int("pid", w.pid).Msg("spawn: worker started")
	if guardErr != nil {
		p.log().Warn().Err(guardErr).Int("pid", w.pid).Msg("spawn: what this worker starts may outlive a killed ferry")
	}
	p.Observer.started(w.pid)
	go p.logStderr(w)
	return w, nil
}

// supervise keeps one worker running until Stop: it waits for the worker,
// reaps it, and starts the next one after the backoff. w is the first
// worker, if already started.
func (p *Pool) supervise(w *worker) {
	defer func() {
		p.mu.Lock()
		p.sups--
		if p.sups == 0 && p.stopping {
			close(p.done)
		}
		p.mu.Unlock()
	}()
	base := orDefault(p.RestartBackoff, DefaultRestartBackoff)
	streak := 0 // failures in a row
	for {
		if w == nil {
			var err error
			w, err = p.spawn()
			if errors.Is(err, errStopping) {
				return
			}
			if err != nil {
				streak++
				delay := backoff(base, streak)
				p.log().Error().Err(err).Dur("delay_ms", delay).Msg("spawn: worker failed to start; retrying")
				if !p.sleep(delay) {
					return
				}
				continue
			}
		}
		pid := w.pid
		state, ran := p.wait(w)
		stopping := w.stopped
		w = nil
		p.mu.Lock()
		retired := p.retiring[pid]
		delete(p.retiring, pid)
		p.mu.Unlock()
		p.Observer.exited(pid, exitCause(retired, stopping, state, ran), ran)
		if retired {
			p.log().Info().Str("program", p.Path).Int("pid", pid).Stringer("status", state).Dur("ran_ms", ran).Msg("spawn: idle worker stopped")
			return
		}
		if ran >= restartResetAfter {
			streak = 0
		}
		clean := state != nil && state.Success()
		ev := p.log().Warn()
		if clean || stopping {
			ev = p.log().Info()
		}
		ev = ev.Str("program", p.Path).Int("pid", pid).Stringer("status", state).Dur("ran_ms", ran)
		if stopping {
			ev.Msg("spawn: worker stopped")
			return
		}
		ev.Msg("spawn: worker exited")
		if !p.startedOK() {
			return // the first worker, before it served: Start fails and stops the pool
		}
		var delay time.Duration
		if !clean || ran < recycleMinRun {
			streak++
			delay = backoff(base, streak)
		}
		p.log().Info().Str("program", p.Path).Int("pid", pid).Dur("delay_ms", delay).Int("failures", streak).Msg("spawn: restarting worker")
		if !p.sleep(delay) {
			return
		}
	}
}

// backoff returns the delay after the nth failure in a row: base doubled
// n-1 times, at most 30 s.
func backoff(base time.Duration, n int) time.Duration {
	d := base
	for i := 1; i < n && d < maxRestartBackoff; i++ {
		d *= 2
	}
	return min(d, maxRestartBackoff)
}

// sleep waits for d, or until Stop; it reports whether the pool still runs.
func (p *Pool) sleep(d time.Duration) bool {
	if d <= 0 {
		return !p.isStopping()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return !p.isStopping()
	case <-p.quit:
		return false
	}
}

// startedOK waits until [Pool.Start] knows whether the first worker
// serves, and reports whether the pool runs: false if Start failed (the
// first worker exited before the Probe found it serving) or Stop began.
func (p *Pool) startedOK() bool {
	select {
	case <-p.ready:
		return !p.isStopping()
	case <-p.quit:
		return false
	}
}

func (p *Pool) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// wait reaps w, kills what is left of its process group (its children
// must not keep accepting on the socket as orphans), and collects its
// stderr.
func (p *Pool) wait(w *worker) (*os.ProcessState, time.Duration) {
	err := w.cmd.Wait() // an *exec.ExitError for a failure; ProcessState is set either way
	ran := time.Since(w.start)
	p.mu.Lock()
	delete(p.procs, w.pid)
	// Before exited is closed: a Start whose first worker exited stops
	// the pool only once it sees that.
	w.stopped = p.stopping
	p.mu.Unlock()
	// The group outlives its leader only through its children. ESRCH
	// means there are none.
	_ = syscall.Kill(-w.pid, syscall.SIGKILL)
	// A process outside the group may still hold stderr: give the logger
	// a moment, then stop reading.
	t := time.NewTimer(100 * time.Millisecond)
	select {
	case <-w.stderrDone:
	case <-t.C:
		w.stderr.Close()
		<-w.stderrDone
	}
	t.Stop()
	w.stderr.Close() // already closed when the logger was cut short
	if w.cmd.ProcessState == nil {
		p.log().Error().Err(err).Int("pid", w.pid).Msg("spawn: waiting for worker")
	}
	w.state, w.ran = w.cmd.ProcessState, ran
	close(w.exited)
	return w.cmd.ProcessState, ran
}

// logStderr logs a worker's stderr line by line, a long line in pieces.
func (p *Pool) logStderr(w *worker) {
	defer close(w.stderrDone)
	lw := linelog.Writer{
		Event:   func() *zerolog.Event { return p.log().Warn().Str("program", p.Path).Int("pid", w.pid) },
		Msg:     "spawn: worker stderr",
		MaxLine: orDefault(p.MaxStderrLine, DefaultMaxStderrLine),
	}
	lw.ReadFrom(io.TeeReader(w.stderr, &w.tail)) // ends when the worker and its children are gone, or wait closes the pipe
	lw.Flush()
}

// Bounds of [stderrTail]: what an error quotes of a worker's stderr.
const (
	tailBytes = 1024
	tailLines = 5
)

// stderrTail keeps the last tailBytes of a worker's stderr, for the error
// of a worker that could not start. Only the stderr logger writes it; it
// is read once the logger has returned.
type stderrTail struct {
	buf []byte
}

func (t *stderrTail) Write(b []byte) (int, error) {
	n := len(b)
	if len(b) >= tailBytes {
		t.buf = append(t.buf[:0], b[len(b)-tailBytes:]...)
		return n, nil
	}
	if over := len(t.buf) + len(b) - tailBytes; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, b...)
	return n, nil
}

// quote returns "; its stderr ends: " and the last lines of stderr, at
// most tailLines, quoted; or "; nothing on its stderr".
func (t *stderrTail) quote() string {
	lines := bytes.Split(bytes.TrimSpace(t.buf), []byte("\n"))
	if len(lines) == 1 && len(lines[0]) == 0 {
		return "; nothing on its stderr"
	}
	lines = lines[max(0, len(lines)-tailLines):]
	return fmt.Sprintf("; its stderr ends: %q", bytes.Join(lines, []byte("\n")))
}
