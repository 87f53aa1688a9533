package spawn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/internal/linelog"
	"github.com/ferrygw/ferry/internal/ownertemp"
	"github.com/rs/zerolog"
)

// Defaults for the zero fields of [Pool].
const (
	DefaultWorkers        = 4
	DefaultRestartBackoff = 500 * time.Millisecond
	DefaultKillGrace      = 5 * time.Second
	DefaultMaxStderrLine  = linelog.DefaultMaxLine // longest stderr line logged in one piece
	DefaultStartTimeout   = 10 * time.Second
	maxRestartBackoff     = 30 * time.Second
	// A worker that ran this long before exiting was healthy: the backoff
	// starts again from RestartBackoff.
	restartResetAfter = 10 * time.Second
	// A worker that exits with status 0 after running this long was
	// recycled (MaxRequests) and is replaced at once; a quicker clean exit
	// counts as a failure, so that a program that exits at once cannot
	// make the pool spin.
	recycleMinRun = 100 * time.Millisecond
)

// ErrStopped is returned by [Pool.Start] on a pool that has been stopped:
// a Pool runs once.
var ErrStopped = errors.New("spawn: pool stopped")

// ErrNotStarted is returned by [Pool.Start] when the first worker exits
// before [Pool.Probe] finds it serving, or does not serve within
// StartTimeout: a program that cannot start, as a broken script or a
// php-cgi with a bad php.ini.
var ErrNotStarted = errors.New("spawn: the workers did not start")

// Pool spawns and supervises Workers long-lived processes of Path, all
// accepting connections on one listening unix socket that the pool
// creates; clients connect to Network() and Address(). See the package
// documentation for how the socket reaches the workers and how they are
// supervised.
//
// The number of workers is fixed unless IdleTimeout is set: then the pool
// scales on demand, as php-fpm's pm = ondemand and mod_fcgid's
// FcgidMinProcessesPerClass / FcgidIdleTimeout do. It starts MinWorkers
// (at least one), starts another worker, up to Workers, whenever the
// requests in progress, counted by [Pool.Busy], outnumber the workers, and
// stops workers its requests did not need for IdleTimeout, down to
// MinWorkers. Workers share one socket, so the pool cannot tell which
// worker is idle: a worker is stopped with SIGTERM, on which php-cgi and
// ferry's own servers finish the request in hand before they exit.
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
	// /usr/local/bin:/usr/bin:/bin), and the MaxRequestsEnv variable. A
	// program that can run its own workers should be told not to here
	// (php-cgi: PHP_FCGI_CHILDREN=0 or unset), so that the pool, not the
	// program, manages the processes.
	Env []string
	// Credential, if not nil, is the user and groups the workers run as,
	// set before they start (they get the listening socket open, and need
	// no access to its file). If nil, ferry's own: as root, root.
	Credential *syscall.Credential
	// Workers is the number of worker processes, or with IdleTimeout the
	// most. If zero or negative, DefaultWorkers.
	Workers int
	// ListenFD is the descriptor each worker gets the listening socket on.
	// If zero, descriptor 0 (stdin), where FastCGI and SCGI workers look
	// for it. From 3 up it is passed after stderr, with stdin on
	// /dev/null, for a worker told the number in Args or Env. 1 and 2,
	// stdout and stderr, are refused.
	ListenFD int
	// MaxRequests, if positive, asks each worker to exit after that many
	// requests, to bound leaks: the pool cannot count a worker's requests
	// (workers accept connections themselves), so recycling is the
	// worker's own, and the pool only replaces a worker that exited. It
	// is passed in the environment variable MaxRequestsEnv names, unless
	// Env already sets it; [Pool.Start] fails if MaxRequests is set and
	// MaxRequestsEnv is not.
	MaxRequests int
	// MaxRequestsEnv names the environment variable that carries
	// MaxRequests to the workers, such as "PHP_FCGI_MAX_REQUESTS" for
	// php-cgi and the FastCGI libraries that follow it.
	MaxRequestsEnv string
	// RestartBackoff is the delay before replacing a worker that failed
	// (a non-zero status, a signal, or a clean exit right after its
	// start). It doubles with each failure in a row, up to 30 s, and
	// starts again once a worker has run for 10 s. A worker that exits
	// cleanly after running longer, as a worker recycled after
	// MaxRequests does, is replaced at once. If zero or negative,
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
	// SIGKILL. If zero or negative, DefaultKillGrace.
	KillGrace time.Duration
	// MaxStderrLine bounds one logged stderr line; a longer line is logged
	// in pieces marked "split". If zero or negative, DefaultMaxStderrLine.
	MaxStderrLine int
	// TempDir is where the socket's private directory is created, and
	// where Start removes those that pools of processes gone left. If
	// empty, os.TempDir(). A unix socket path is limited to about 100
	// bytes, and TempDir's part is followed by about 50
	// ("/ferry-spawn-PID-START-N/worker.sock").
	TempDir string
	// Logger receives the workers' stderr lines, starts, exits and
	// restarts, each with the worker's pid. If nil, nothing is logged.
	Logger *zerolog.Logger
	// Observer is told of worker starts and exits, for metrics and status
	// pages. Its zero value tells nobody.
	Observer PoolObserver
	// Probe, if not nil, tells whether a worker serves on the socket at
	// network and address: [Pool.Start] calls it, again every 20 ms while
	// it fails, until it returns nil, and fails with ErrNotStarted if the
	// first worker exits or StartTimeout passes first. ctx ends when the
	// first worker exits. A FastCGI pool asks FCGI_GET_VALUES on a
	// connection of its own: the answer comes once a worker accepts it. If
	// nil, Start does not wait for the workers to serve.
	Probe func(ctx context.Context, network, address string) error
	// StartTimeout bounds the wait for Probe in [Pool.Start]. If zero or
	// negative, DefaultStartTimeout.
	StartTimeout time.Duration

	startMu  sync.Mutex // held through Start: Stop waits for it
	mu       sync.Mutex // guards the fields below
	started  bool
	running  bool // the supervisors run
	stopping bool
	dir      *ownertemp.Dir // the private directory holding the socket, and its lock
	sock     string         // the socket path
	lsock    *os.File       // the listening socket, in blocking mode
	guardR   *os.File       // the guards' pipe (guard.go): its read end
	guardW   *os.File       // and its write end, which only ferry holds
	env      []string
	procs    map[int]*exec.Cmd // live workers by pid
	quit     chan struct{}     // closed by Stop: no more starts
	ready    chan struct{}     // closed once Start has found the first worker serving
	done     chan struct{}     // closed when every supervisor has returned after Stop
	sups     int               // supervisors running: the worker count
	busy     int               // requests in progress (Busy)
	peak     int               // the most requests in progress since the last scale-down check
	retiring map[int]bool      // pids stopped for being idle: not replaced
	ctxStop  func() bool       // unregisters the Start context's watch
	cleaned  sync.Once         // removes the socket
	guards   sync.WaitGroup    // the guards' reapers (not under mu)
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

// Size returns the most workers p runs at once: Workers, or
// DefaultWorkers. A client that holds a worker for each connection, as
// php-cgi's one connection at a time does, allows as many connections.
func (p *Pool) Size() int { return orDefault(p.Workers, DefaultWorkers) }

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

// orDefault returns v, or def if v is zero or negative.
func orDefault[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Start creates the socket, starts the workers and supervises them in the
// background. It fails if the pool is misconfigured, the socket cannot be
// made or the first worker cannot be started (a wrong Path), and with
// Probe, if the first worker exits before it serves (ErrNotStarted, with
// its exit status and the last lines of its stderr); later start failures
// and exits are logged and retried with backoff. If ctx ends, the pool
// stops as [Pool.Stop] with a background context does; call Stop to wait
// for that.
func (p *Pool) Start(ctx context.Context) error {
	switch {
	case p.Path == "":
		return errors.New("spawn: pool has no program Path")
	case p.MaxRequests > 0 && p.MaxRequestsEnv == "":
		return errors.New("spawn: pool has MaxRequests but no MaxRequestsEnv to tell the workers")
	case p.ListenFD == 1 || p.ListenFD == 2 || p.ListenFD < 0:
		return fmt.Errorf("spawn: ListenFD %d: want 0, or 3 and up", p.ListenFD)
	}
	p.startMu.Lock()
	defer p.startMu.Unlock()
	p.mu.Lock()
	switch {
	case p.stopping:
		p.mu.Unlock()
		return ErrStopped
	case p.started:
		p.mu.Unlock()
		return errors.New("spawn: pool already started")
	}
	p.started = true
	p.procs = make(map[int]*exec.Cmd)
	p.quit = make(chan struct{})
	p.ready = make(chan struct{})
	p.done = make(chan struct{})
	p.env = p.buildEnv()
	p.mu.Unlock()

	if err := p.openGuardPipe(); err != nil {
		p.stop(context.Background())
		return err
	}
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
	n := p.Size()
	if p.IdleTimeout > 0 {
		n = min(max(p.MinWorkers, 1), n)
	}
	p.mu.Lock()
	p.running = true
	p.sups = 1
	p.retiring = make(map[int]bool)
	p.mu.Unlock()
	go p.supervise(first)
	// The others start once the first serves: a program that cannot start
	// is reported once, not by n workers.
	if err := p.waitReady(ctx, first); err != nil {
		p.stop(context.Background())
		return err
	}
	p.mu.Lock()
	p.sups = n
	p.mu.Unlock()
	close(p.ready)
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

// waitReady waits until Probe finds the pool serving, and fails with
// ErrNotStarted if the first worker exits before, or StartTimeout passes.
func (p *Pool) waitReady(ctx context.Context, first *worker) error {
	if p.Probe == nil {
		return nil
	}
	timeout := orDefault(p.StartTimeout, DefaultStartTimeout)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go func() { // the probe's wait ends with the worker
		select {
		case <-first.exited:
			cancel()
		case <-pctx.Done():
		}
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := p.Probe(pctx, p.Network(), p.Address())
		if err == nil {
			return nil
		}
		select {
		case <-pctx.Done(): // the first worker exited, StartTimeout passed or ctx ended
		case <-tick.C:
			continue
		}
		select {
		case <-first.exited:
			return fmt.Errorf("%w: %s (pid %d) exited after %v with %v%s", ErrNotStarted,
				p.Path, first.pid, first.ran.Round(time.Millisecond), first.state, first.tail.quote())
		default:
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s: %w", ErrNotStarted, p.Path, ctx.Err())
		}
		return fmt.Errorf("%w: %s (pid %d) did not serve within %v: %w", ErrNotStarted, p.Path, first.pid, timeout, err)
	}
}

// buildEnv returns Env with PATH and the MaxRequestsEnv variable added.
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
	if p.MaxRequests > 0 && !has(p.MaxRequestsEnv) {
		env = append(env, p.MaxRequestsEnv+"="+strconv.Itoa(p.MaxRequests))
	}
	return env
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
	grow := p.running && !p.stopping && p.busy > p.sups && p.sups < p.Size()
	if grow {
		p.sups++
	}
	n := p.sups
	p.mu.Unlock()
	if grow {
		p.log().Info().Str("program", p.Path).Int("workers", n).Msg("spawn: starting a worker on demand")
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
			p.log().Info().Str("program", p.Path).Int("pid", pid).Dur("idle_timeout_ms", p.IdleTimeout).Msg("spawn: stopping an idle worker")
			_ = syscall.Kill(-pid, syscall.SIGTERM) // ESRCH: it is gone already
			time.AfterFunc(orDefault(p.KillGrace, DefaultKillGrace), func() {
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
		t := time.NewTimer(orDefault(p.KillGrace, DefaultKillGrace))
		select {
		case <-p.done:
		case <-t.C:
			p.killAll()
		case <-ctx.Done():
			err = fmt.Errorf("spawn: stopping pool: %w", ctx.Err())
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
