package fastcgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
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

	"github.com/rs/zerolog"
)

// Defaults for the zero fields of [Pool].
const (
	DefaultPoolWorkers    = 4
	DefaultRestartBackoff = 500 * time.Millisecond
	DefaultPoolKillGrace  = 5 * time.Second
	DefaultWorkerStderr   = 4 << 10 // longest stderr line logged whole
	maxRestartBackoff     = 30 * time.Second
	// A worker that ran this long before exiting was healthy: the backoff
	// starts again from RestartBackoff.
	restartResetAfter = 10 * time.Second
	// A worker that exits with status 0 after running this long was
	// recycled (PHP_FCGI_MAX_REQUESTS) and is replaced at once; a quicker
	// clean exit counts as a failure, so that a program that exits at once
	// cannot make the pool spin.
	recycleMinRun = 100 * time.Millisecond
	// The longest socket path: sun_path is 108 bytes on Linux, 104 on the
	// BSDs, with the terminating NUL.
	maxSocketPath = 103
)

// ErrPoolStopped is returned by [Pool.Start] on a pool that has been
// stopped: a Pool runs once.
var ErrPoolStopped = errors.New("fastcgi: pool stopped")

// Pool spawns and supervises long-lived FastCGI workers, as mod_fcgid and
// spawn-fcgi (-F N) do: Workers processes of Path, all accepting on one
// listening unix socket that the pool creates in a private temporary
// directory and passes to each as file descriptor 0
// (FCGI_LISTENSOCK_FILENO, FastCGI Specification § 2.2). Clients connect to
// Network() and Address():
//
//	c := &fastcgi.Client{Network: p.Network(), Address: p.Address(), MaxConns: p.Workers}
//
// Setting MaxConns to the worker count matters: a worker such as php-cgi
// serves one connection at a time, and a kept connection holds it.
//
// Each worker runs in its own process group, with its stdout on /dev/null
// and its stderr logged line by line with its pid. A worker that exits for
// any reason is started again, after a delay when it exits early or fails
// (see RestartBackoff), until [Pool.Stop], which stops every worker's
// process group (SIGTERM, then SIGKILL), reaps them all, and removes the
// socket.
//
// The number of workers is fixed unless IdleTimeout is set: then the pool
// scales on demand, as php-fpm's pm = ondemand and mod_fcgid's
// FcgidMinProcessesPerClass / FcgidIdleTimeout do. It starts MinWorkers
// (at least one), starts another worker, up to Workers, whenever the
// requests in progress, counted by [Pool.Busy], outnumber the workers, and
// stops workers its requests did not need for IdleTimeout, down to
// MinWorkers. Workers share one socket, so ferry cannot tell which worker
// is idle: a worker is stopped with SIGTERM, on which php-cgi and ferry
// finish the request in hand before they exit.
//
// A Pool must not be copied after first use.
type Pool struct {
	// Path is the program to run, such as "/usr/bin/php-cgi".
	Path string
	// Args are its arguments, after the program name.
	Args []string
	// Dir is the workers' working directory. If empty, ferry's own.
	Dir string
	// Env is the workers' environment, exactly: nothing of ferry's own is
	// passed but PATH, which is added when Env has none (ferry's PATH, or
	// /usr/local/bin:/usr/bin:/bin). php-cgi takes its settings from here:
	// PHP_FCGI_CHILDREN should be 0 or unset, so that the pool, not
	// php-cgi, manages the processes; PHP_FCGI_MAX_REQUESTS see
	// MaxRequests.
	Env []string
	// Workers is the number of worker processes. If zero,
	// DefaultPoolWorkers.
	Workers int
	// MaxRequests, if positive, asks each worker to exit after that many
	// requests, to bound leaks: ferry cannot count a worker's requests
	// from outside (workers accept connections themselves), so recycling
	// is the worker's own, and the pool only replaces a worker that
	// exited. It sets PHP_FCGI_MAX_REQUESTS (php-cgi, and FastCGI
	// libraries that follow it) unless Env already does. If zero, Env
	// decides; php-cgi's own default is 500.
	MaxRequests int
	// RestartBackoff is the delay before replacing a worker that failed
	// (a non-zero status, a signal, or a clean exit within a second of its
	// start). It doubles with each failure in a row, up to 30 s, and
	// starts again once a worker has run for 10 s. A worker that exits
	// cleanly after running longer, as php-cgi does after
	// PHP_FCGI_MAX_REQUESTS, is replaced at once. If zero,
	// DefaultRestartBackoff.
	RestartBackoff time.Duration
	// IdleTimeout, if positive, makes the pool scale on demand (see
	// above): workers beyond what the requests of the last IdleTimeout
	// needed are stopped, down to MinWorkers.
	IdleTimeout time.Duration
	// MinWorkers is the number of workers an on-demand pool keeps when
	// idle; zero keeps one. It has no effect without IdleTimeout.
	MinWorkers int
	// KillGrace is the time [Pool.Stop] leaves workers between SIGTERM and
	// SIGKILL. If zero, DefaultPoolKillGrace.
	KillGrace time.Duration
	// MaxStderrLine bounds one logged stderr line; longer lines are cut.
	// If zero, DefaultWorkerStderr.
	MaxStderrLine int
	// TempDir is where the socket's private directory is created. If
	// empty, os.TempDir(). A unix socket path is limited to about 100
	// bytes.
	TempDir string
	// Logger receives the workers' stderr lines, starts, exits and
	// restarts, each with the worker's pid. If nil, nothing is logged.
	Logger *zerolog.Logger
	// Observer is told of worker starts and exits. Its zero value tells
	// nobody.
	Observer PoolObserver

	startMu  sync.Mutex // held through Start: Stop waits for it
	mu       sync.Mutex // guards the fields below
	started  bool
	running  bool // the supervisors run
	stopping bool
	dir      string   // the private directory holding the socket
	sock     string   // the socket path
	lsock    *os.File // the listening socket, in blocking mode
	env      []string
	procs    map[int]*exec.Cmd // live workers by pid
	quit     chan struct{}     // closed by Stop: no more starts
	done     chan struct{}     // closed when every supervisor has returned after Stop
	sups     int               // supervisors running: the worker count
	busy     int               // requests in progress (Busy)
	peak     int               // the most requests in progress since the last scale-down check
	retiring map[int]bool      // pids stopped for being idle: not replaced
	ctxStop  func() bool       // unregisters the Start context's watch
	cleaned  sync.Once         // removes the socket
}

// Network returns the network clients dial: "unix".
func (p *Pool) Network() string { return "unix" }

// Address returns the path of the listening socket, or "" before
// [Pool.Start].
func (p *Pool) Address() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sock
}

// PIDs returns the pids of the running workers, in increasing order.
func (p *Pool) PIDs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	pids := make([]int, 0, len(p.procs))
	for pid := range p.procs {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

func (p *Pool) log() *zerolog.Logger {
	if p.Logger == nil {
		l := zerolog.Nop()
		return &l
	}
	return p.Logger
}

func (p *Pool) workers() int { return orInt(p.Workers, DefaultPoolWorkers) }

// Start creates the socket, starts the workers and supervises them in the
// background. It fails if the socket cannot be made or the first worker
// cannot be started (a wrong Path); later start failures are logged and
// retried with backoff. If ctx ends, the pool stops as [Pool.Stop] with a
// background context does; call Stop to wait for that.
func (p *Pool) Start(ctx context.Context) error {
	if p.Path == "" {
		return errors.New("fastcgi: pool has no program Path")
	}
	p.startMu.Lock()
	defer p.startMu.Unlock()
	p.mu.Lock()
	switch {
	case p.stopping:
		p.mu.Unlock()
		return ErrPoolStopped
	case p.started:
		p.mu.Unlock()
		return errors.New("fastcgi: pool already started")
	}
	p.started = true
	p.procs = make(map[int]*exec.Cmd)
	p.quit = make(chan struct{})
	p.done = make(chan struct{})
	p.env = p.buildEnv()
	p.mu.Unlock()

	if err := p.listen(); err != nil {
		p.stop(context.Background())
		return err
	}
	// Start one worker in the foreground so a wrong Path shows here.
	first, err := p.spawn()
	if err != nil {
		p.stop(context.Background())
		return err
	}
	n := p.workers()
	if p.IdleTimeout > 0 {
		n = min(max(p.MinWorkers, 1), n)
	}
	p.mu.Lock()
	p.running = true
	p.sups = n
	p.retiring = make(map[int]bool)
	p.mu.Unlock()
	go p.supervise(first)
	for range n - 1 {
		go p.supervise(nil)
	}
	if p.IdleTimeout > 0 {
		go p.scaleDown()
	}
	p.mu.Lock()
	p.ctxStop = context.AfterFunc(ctx, func() { p.Stop(context.Background()) })
	p.mu.Unlock()
	return nil
}

// Busy counts a request in progress for on-demand scaling, and starts
// another worker if the requests outnumber the workers (up to Workers).
// Call the function it returns when the request is over. Without
// IdleTimeout it does nothing.
func (p *Pool) Busy() (done func()) {
	if p.IdleTimeout <= 0 {
		return func() {}
	}
	p.mu.Lock()
	p.busy++
	p.peak = max(p.peak, p.busy)
	grow := p.running && !p.stopping && p.busy > p.sups && p.sups < p.workers()
	if grow {
		p.sups++
	}
	n := p.sups
	p.mu.Unlock()
	if grow {
		p.log().Info().Str("program", p.Path).Int("workers", n).Msg("fastcgi: starting a worker on demand")
		go p.supervise(nil)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.busy--
			p.mu.Unlock()
		})
	}
}

// scaleDown stops, every IdleTimeout, the workers that the most requests
// in progress during it did not need, down to MinWorkers: the newest
// first, one SIGTERM each.
func (p *Pool) scaleDown() {
	t := time.NewTicker(p.IdleTimeout)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
		}
		p.mu.Lock()
		keep := max(p.MinWorkers, p.peak, 1)
		p.peak = p.busy
		var victims []int
		if extra := p.sups - len(p.retiring) - keep; extra > 0 && !p.stopping {
			var newest []*exec.Cmd
			for pid, cmd := range p.procs {
				if !p.retiring[pid] {
					newest = append(newest, cmd)
				}
			}
			slices.SortFunc(newest, func(a, b *exec.Cmd) int { return b.Process.Pid - a.Process.Pid })
			for _, cmd := range newest[:min(extra, len(newest))] {
				p.retiring[cmd.Process.Pid] = true
				victims = append(victims, cmd.Process.Pid)
			}
		}
		p.mu.Unlock()
		for _, pid := range victims {
			p.log().Info().Str("program", p.Path).Int("pid", pid).Dur("idle", p.IdleTimeout).Msg("fastcgi: stopping an idle worker")
			_ = syscall.Kill(-pid, syscall.SIGTERM) // ESRCH: it is gone already
			time.AfterFunc(dur(p.KillGrace, DefaultPoolKillGrace), func() {
				p.mu.Lock()
				alive := p.retiring[pid]
				p.mu.Unlock()
				if alive { // it ignored SIGTERM, or its request outlasted the grace
					_ = syscall.Kill(-pid, syscall.SIGKILL)
				}
			})
		}
	}
}

// buildEnv returns Env with PATH and PHP_FCGI_MAX_REQUESTS added.
func (p *Pool) buildEnv() []string {
	env := slices.Clone(p.Env)
	has := func(name string) bool {
		return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
	}
	if !has("PATH") {
		path := os.Getenv("PATH")
		if path == "" {
			path = "/usr/local/bin:/usr/bin:/bin"
		}
		env = append(env, "PATH="+path)
	}
	if p.MaxRequests > 0 && !has("PHP_FCGI_MAX_REQUESTS") {
		env = append(env, "PHP_FCGI_MAX_REQUESTS="+strconv.Itoa(p.MaxRequests))
	}
	return env
}

// listen creates the listening socket in a private directory. The workers
// get it in blocking mode: O_NONBLOCK belongs to the socket, shared by
// every descriptor of it, and php-cgi gives up when accept fails with
// EAGAIN. ferry itself never accepts on it.
func (p *Pool) listen() error {
	dir, err := os.MkdirTemp(p.TempDir, "ferry-fcgi-")
	if err != nil {
		return fmt.Errorf("fastcgi: creating the socket directory: %w", err)
	}
	p.mu.Lock()
	p.dir = dir // mode 0700: only ferry's user can connect
	p.mu.Unlock()
	sock := filepath.Join(dir, "fcgi.sock")
	if len(sock) > maxSocketPath {
		return fmt.Errorf("fastcgi: socket path %s is longer than %d bytes: set a shorter TempDir", sock, maxSocketPath)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("fastcgi: listening on %s: %w", sock, err)
	}
	ln.SetUnlinkOnClose(false) // the directory goes in Stop
	f, err := ln.File()
	ln.Close() // f holds the socket now
	if err != nil {
		return fmt.Errorf("fastcgi: listening on %s: %w", sock, err)
	}
	if err := syscall.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return fmt.Errorf("fastcgi: listening on %s: %w", sock, err)
	}
	p.mu.Lock()
	p.sock, p.lsock = sock, f
	p.mu.Unlock()
	return nil
}

// worker is one running worker process.
type worker struct {
	cmd        *exec.Cmd
	pid        int
	start      time.Time
	stderr     *os.File      // read end of the stderr pipe
	stderrDone chan struct{} // closed when the stderr logger returns
}

// errStopping reports that Stop has begun: nothing more is started.
var errStopping = errors.New("fastcgi: pool stopping")

// spawn starts one worker, unless the pool is stopping. The start happens
// under p.mu, so Stop sees every worker that started.
func (p *Pool) spawn() (*worker, error) {
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("fastcgi: creating a stderr pipe: %w", err)
	}
	cmd := &exec.Cmd{
		Path:        p.Path,
		Args:        append([]string{p.Path}, p.Args...),
		Dir:         p.Dir,
		Stdin:       nil, // set under the lock
		Stdout:      nil, // /dev/null
		Stderr:      stderrW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		stderrR.Close()
		stderrW.Close()
		return nil, errStopping
	}
	cmd.Stdin = p.lsock // FCGI_LISTENSOCK_FILENO
	cmd.Env = p.env
	err = cmd.Start()
	if err == nil {
		p.procs[cmd.Process.Pid] = cmd
	}
	p.mu.Unlock()
	stderrW.Close() // the worker has its copy; EOF comes when it is gone
	if err != nil {
		stderrR.Close()
		return nil, fmt.Errorf("fastcgi: starting worker %s: %w", p.Path, err)
	}
	w := &worker{cmd: cmd, pid: cmd.Process.Pid, start: time.Now(), stderr: stderrR, stderrDone: make(chan struct{})}
	p.log().Info().Str("program", p.Path).Int("pid", w.pid).Msg("fastcgi: worker started")
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
	base := dur(p.RestartBackoff, DefaultRestartBackoff)
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
				p.log().Error().Err(err).Dur("delay", delay).Msg("fastcgi: worker failed to start; retrying")
				if !p.sleep(delay) {
					return
				}
				continue
			}
		}
		pid := w.pid
		state, ran := p.wait(w)
		w = nil
		p.mu.Lock()
		retired := p.retiring[pid]
		delete(p.retiring, pid)
		p.mu.Unlock()
		p.Observer.exited(pid, p.exitCause(retired, state, ran), ran)
		if retired {
			p.log().Info().Str("program", p.Path).Int("pid", pid).Stringer("status", state).Dur("ran", ran).Msg("fastcgi: idle worker stopped")
			return
		}
		if ran >= restartResetAfter {
			streak = 0
		}
		clean := state != nil && state.Success()
		stopping := p.isStopping()
		ev := p.log().Warn()
		if clean || stopping {
			ev = p.log().Info()
		}
		ev = ev.Str("program", p.Path).Int("pid", pid).Stringer("status", state).Dur("ran", ran)
		if stopping {
			ev.Msg("fastcgi: worker stopped")
			return
		}
		ev.Msg("fastcgi: worker exited")
		var delay time.Duration
		if !clean || ran < recycleMinRun {
			streak++
			delay = backoff(base, streak)
		}
		p.log().Info().Str("program", p.Path).Int("pid", pid).Dur("delay", delay).Int("failures", streak).Msg("fastcgi: restarting worker")
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
		p.log().Error().Err(err).Int("pid", w.pid).Msg("fastcgi: waiting for worker")
	}
	return w.cmd.ProcessState, ran
}

// logStderr logs a worker's stderr line by line, cutting long lines.
func (p *Pool) logStderr(w *worker) {
	defer close(w.stderrDone)
	maxLine := orInt(p.MaxStderrLine, DefaultWorkerStderr)
	br := bufio.NewReaderSize(w.stderr, 4096)
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line) < maxLine {
			line = append(line, frag[:min(len(frag), maxLine-len(line))]...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(line) > 0 {
			p.log().Warn().Str("program", p.Path).Int("pid", w.pid).Str("stderr", strings.TrimRight(string(line), "\r\n")).Msg("fastcgi: worker stderr")
			line = line[:0]
		}
		if err != nil {
			return
		}
	}
}

// Stop stops the pool: no worker is started any more, every worker's
// process group gets SIGTERM, then SIGKILL after KillGrace or when ctx
// ends, whichever comes first; Stop returns once every worker has been
// reaped, with the socket and its directory removed. It returns ctx's
// error if ctx ended before the workers exited on SIGTERM. Stop may be
// called more than once, and concurrently; a pool never started is just
// marked stopped.
func (p *Pool) Stop(ctx context.Context) error {
	p.startMu.Lock() // let a Start under way finish first
	p.startMu.Unlock()
	return p.stop(ctx)
}

func (p *Pool) stop(ctx context.Context) error {
	p.mu.Lock()
	first := !p.stopping
	p.stopping = true
	running := p.running
	if first && running && p.sups == 0 {
		close(p.done) // scaled down to nothing: no supervisor will
	}
	var pids []int
	if first {
		for pid := range p.procs {
			pids = append(pids, pid)
		}
		if p.quit != nil {
			close(p.quit)
		}
	}
	ctxStop := p.ctxStop
	p.mu.Unlock()
	if ctxStop != nil {
		ctxStop()
	}
	for _, pid := range pids {
		// The supervisor reaps it; ESRCH means it is gone already.
		_ = syscall.Kill(-pid, syscall.SIGTERM)
	}

	var err error
	if running {
		t := time.NewTimer(dur(p.KillGrace, DefaultPoolKillGrace))
		select {
		case <-p.done:
		case <-t.C:
			p.killAll()
		case <-ctx.Done():
			err = fmt.Errorf("fastcgi: stopping pool: %w", ctx.Err())
			p.killAll()
		}
		t.Stop()
		// SIGKILL cannot be caught: this wait is short.
		<-p.done
	}
	p.cleanup()
	return err
}

// killAll sends SIGKILL to every worker's process group.
func (p *Pool) killAll() {
	p.mu.Lock()
	pids := make([]int, 0, len(p.procs))
	for pid := range p.procs {
		pids = append(pids, pid)
	}
	p.mu.Unlock()
	for _, pid := range pids {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // ESRCH: already gone
	}
}

// cleanup closes the socket and removes its directory.
func (p *Pool) cleanup() {
	p.cleaned.Do(func() {
		p.mu.Lock()
		f, dir := p.lsock, p.dir
		p.mu.Unlock()
		if f != nil {
			f.Close()
		}
		if dir != "" {
			if err := os.RemoveAll(dir); err != nil {
				p.log().Warn().Err(err).Str("dir", dir).Msg("fastcgi: removing the socket directory")
			}
		}
	})
}
