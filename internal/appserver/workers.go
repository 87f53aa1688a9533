package appserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/internal/ownertemp"
	"github.com/ferrygw/ferry/spawn"
	"github.com/rs/zerolog"
)

// Defaults for the zero fields of [Workers].
const (
	DefaultStartTimeout = 60 * time.Second
	// watchInterval is how often resident memory is read, and the
	// scoreboard lines of workers gone are removed.
	watchInterval = time.Second
)

// ErrNotReady is returned by [Workers.Start] when the first worker exits,
// or does not finish loading the application in StartTimeout.
var ErrNotReady = errors.New("appserver: the application did not load")

// Workers runs the worker processes of an application in a [spawn.Pool],
// with what an application server adds to it (see the package
// documentation): a wait for the application to load, a hard timeout per
// request, recycling past a memory limit, and the scoreboard.
//
// A Workers must not be copied after first use, and runs once.
type Workers struct {
	// App is what the workers run. If nil, the workers are Pool's program
	// as it is set (php-cgi for persist=php): then Start does not wait for
	// them to load, and the hard timeout cannot find a worker to kill
	// (Timeout must be zero).
	App App
	// Pool is the pool the workers run in, and its settings: Workers,
	// MinWorkers, IdleTimeout, MaxRequests, KillGrace, Env (the
	// environment the adapter's configuration is added to), TempDir and
	// Logger are the caller's. With an App, Start sets Path, Args, Dir and
	// MaxRequestsEnv. It is required.
	Pool *spawn.Pool
	// Timeout is the hard limit on a request, counted from when a worker
	// can take it (not while it waits for one in ferry's queue): past it,
	// the worker serving it is killed and the client gets 504 (see
	// [Workers.Handler]). If zero or negative, none.
	Timeout time.Duration
	// MaxRSS, if positive, is the resident memory, in bytes, past which a
	// worker is recycled: sent SIGTERM, on which it finishes the request
	// in hand and exits, to be replaced by the pool. It is read once a
	// second from /proc (Linux).
	MaxRSS int64
	// IDHeader is the request header that carries the request's ID to the
	// workers. If empty, RequestIDHeader (X-Request-Id, which applications
	// and their logging middleware read). The Perl CGI adapter takes
	// X-Ferry-Request-Id and removes it from the scripts' environment, so
	// that scripts see the request as under CGI.
	IDHeader string
	// ResponseIDHeader is the response header in which the request's ID
	// is already set when [Workers.Handler] gets it (ferry's access log
	// sets the one its configuration names). If empty, RequestIDHeader.
	ResponseIDHeader string
	// StartTimeout bounds the wait for the first worker to load the
	// application. If zero or negative, DefaultStartTimeout.
	StartTimeout time.Duration
	// Logger receives hard timeouts, recycling and cut-short responses. If
	// nil, Pool.Logger; if both are nil, nothing is logged.
	Logger *zerolog.Logger

	mu      sync.Mutex // guards the fields below
	started bool
	dir     *ownertemp.Dir // holds the adapter and the board, and its lock; removed by Stop
	board   string         // the scoreboard directory; "" without an App
	quit    chan struct{}
	done    chan struct{} // closed when the watcher returns
}

func (w *Workers) log() *zerolog.Logger {
	switch {
	case w.Logger != nil:
		return w.Logger
	case w.Pool != nil && w.Pool.Logger != nil:
		return w.Pool.Logger
	}
	l := zerolog.Nop()
	return &l
}

// responseIDHeader returns the header the request's ID is taken from.
func (w *Workers) responseIDHeader() string {
	if w.ResponseIDHeader == "" {
		return RequestIDHeader
	}
	return w.ResponseIDHeader
}

func (w *Workers) idHeader() string {
	if w.IDHeader == "" {
		return RequestIDHeader
	}
	return w.IDHeader
}

// Address returns the socket the workers accept on, or "" before Start.
func (w *Workers) Address() string { return w.Pool.Address() }

// PIDs returns the pids of the running workers.
func (w *Workers) PIDs() []int { return w.Pool.PIDs() }

// Start writes the adapter, starts the workers, and waits until the first
// has loaded the application (it returns an error wrapping ErrNotReady if
// that worker exits first or takes longer than StartTimeout). If ctx ends,
// the workers stop as [Workers.Stop] does.
func (w *Workers) Start(ctx context.Context) error {
	if w.Pool == nil {
		return errors.New("appserver: Workers has no Pool")
	}
	if w.App == nil && w.Timeout > 0 {
		return errors.New("appserver: a hard timeout needs workers that run an adapter (App)")
	}
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return errors.New("appserver: workers already started")
	}
	w.started = true
	w.quit = make(chan struct{})
	w.done = make(chan struct{})
	w.mu.Unlock()

	if w.App != nil {
		if err := w.prepare(); err != nil {
			w.removeDir()
			close(w.done)
			return err
		}
	}
	if err := w.Pool.Start(ctx); err != nil {
		w.removeDir()
		close(w.done)
		return err
	}
	if w.App != nil {
		if err := w.waitReady(ctx); err != nil {
			w.Pool.Stop(context.Background())
			w.removeDir()
			close(w.done)
			return err
		}
	}
	go w.watch()
	context.AfterFunc(ctx, func() { w.Stop(context.Background()) })
	return nil
}

// appDirPrefix begins the name of the directory of the adapter and the
// scoreboard, which goes on with ferry's pid and start time (package
// ownertemp).
const appDirPrefix = "ferry-app-"

// prepare removes the adapter directories of ferrys gone, writes the
// adapter into a private directory with the scoreboard, owned by the user
// the workers run as (Pool.Credential), and sets the pool's program from
// App.
func (w *Workers) prepare() error {
	removed, err := ownertemp.RemoveStale(w.Pool.TempDir, appDirPrefix)
	for _, d := range removed {
		w.log().Info().Str("dir", d).Msg("appserver: removed the adapter's directory of a ferry no longer running")
	}
	if err != nil { // another user's: theirs to remove
		w.log().Debug().Err(err).Msg("appserver: stale adapter directories left")
	}
	owned, err := ownertemp.Create(w.Pool.TempDir, appDirPrefix)
	if err != nil {
		return fmt.Errorf("appserver: %w", err)
	}
	w.mu.Lock()
	w.dir = owned
	w.mu.Unlock()
	dir := owned.Path()
	src, err := adapters.ReadFile("adapters/" + w.App.adapter())
	if err != nil {
		return fmt.Errorf("appserver: %w", err)
	}
	adapter := filepath.Join(dir, w.App.adapter())
	if err := os.WriteFile(adapter, src, 0o600); err != nil {
		return fmt.Errorf("appserver: writing the adapter: %w", err)
	}
	board := filepath.Join(dir, "board")
	if err := os.Mkdir(board, 0o700); err != nil {
		return fmt.Errorf("appserver: %w", err)
	}
	if c := w.Pool.Credential; c != nil {
		// The workers run as another user: the directory is theirs.
		for _, name := range []string{dir, adapter, board} {
			if err := os.Chown(name, int(c.Uid), int(c.Gid)); err != nil {
				return fmt.Errorf("appserver: %w", err)
			}
		}
	}
	cmd, err := w.App.command(adapter)
	if err != nil {
		return err
	}
	p := w.Pool
	p.Path, p.Args, p.Dir = cmd.path, cmd.args, cmd.dir
	p.Env = append(append(slices.Clone(p.Env), cmd.env...), envBoard+"="+board)
	p.MaxRequestsEnv = MaxRequestsEnv
	w.mu.Lock()
	w.board = board
	w.mu.Unlock()
	return nil
}

// waitReady waits for the first worker's scoreboard line, which the
// adapters write once the application has loaded.
func (w *Workers) waitReady(ctx context.Context) error {
	pids := w.Pool.PIDs()
	if len(pids) == 0 {
		return fmt.Errorf("%w: no worker started", ErrNotReady)
	}
	first := pids[0]
	timeout := w.StartTimeout
	if timeout <= 0 {
		timeout = DefaultStartTimeout
	}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(filepath.Join(w.board, strconv.Itoa(first))); err == nil {
			return nil
		}
		if !slices.Contains(w.Pool.PIDs(), first) {
			return fmt.Errorf("%w: worker %d (%s) exited while loading it; its stderr is in the log", ErrNotReady, first, w.Pool.Path)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: worker %d (%s) did not load it within %v", ErrNotReady, first, w.Pool.Path, timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNotReady, ctx.Err())
		case <-tick.C:
		}
	}
}

// Stop stops the workers as [spawn.Pool.Stop] does, and removes the
// adapter and the scoreboard. It may be called more than once.
func (w *Workers) Stop(ctx context.Context) error {
	w.mu.Lock()
	started := w.started
	quit := w.quit
	w.quit = nil
	w.mu.Unlock()
	if !started {
		return w.Pool.Stop(ctx)
	}
	if quit != nil {
		close(quit)
	}
	err := w.Pool.Stop(ctx)
	<-w.done
	w.removeDir()
	return err
}

func (w *Workers) removeDir() {
	w.mu.Lock()
	dir := w.dir
	w.dir = nil
	w.mu.Unlock()
	if dir != nil {
		path := dir.Path()
		if err := dir.Remove(); err != nil {
			w.log().Warn().Err(err).Str("dir", path).Msg("appserver: removing the adapter's directory")
		}
	}
}

// watch recycles workers past MaxRSS and removes the scoreboard lines of
// workers gone, every watchInterval, until Stop.
func (w *Workers) watch() {
	defer close(w.done)
	w.mu.Lock()
	quit := w.quit
	w.mu.Unlock()
	if w.MaxRSS <= 0 && w.board == "" {
		<-quit
		return
	}
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	recycling := make(map[int]time.Time) // pid: when SIGKILL follows
	gone := make(map[string]bool)        // board lines of pids gone at the last tick
	for {
		select {
		case <-quit:
			return
		case <-t.C:
		}
		pids := w.Pool.PIDs()
		if w.MaxRSS > 0 {
			w.recycle(pids, recycling)
		}
		if w.board != "" {
			gone = w.sweep(pids, gone)
		}
	}
}

// recycle sends SIGTERM to the workers past MaxRSS, and SIGKILL to those
// that did not exit within the pool's kill grace.
func (w *Workers) recycle(pids []int, recycling map[int]time.Time) {
	now := time.Now()
	for pid, kill := range recycling {
		switch {
		case !slices.Contains(pids, pid):
			delete(recycling, pid)
		case now.After(kill):
			w.log().Warn().Int("pid", pid).Msg("appserver: worker did not exit after SIGTERM; killing it")
			_ = syscall.Kill(-pid, syscall.SIGKILL) // ESRCH: gone already
			delete(recycling, pid)
		}
	}
	grace := w.Pool.KillGrace
	if grace <= 0 {
		grace = spawn.DefaultKillGrace
	}
	if w.Timeout > grace {
		grace = w.Timeout // let the request in hand finish
	}
	for _, pid := range pids {
		if _, ok := recycling[pid]; ok {
			continue
		}
		rss, err := residentBytes(pid)
		if err != nil || rss <= w.MaxRSS {
			continue
		}
		w.log().Info().Int("pid", pid).Int64("rss_bytes", rss).Int64("max_rss_bytes", w.MaxRSS).Msg("appserver: worker past its memory limit; recycling it")
		// To the worker alone: the programs it runs for the request in
		// hand must finish it.
		_ = syscall.Kill(pid, syscall.SIGTERM) // ESRCH: gone already
		recycling[pid] = now.Add(grace)
	}
}

// sweep removes the scoreboard lines of workers gone since the last
// sweep at least: a line read at the end of a response must outlive its
// worker a little. It returns the lines of workers gone now.
func (w *Workers) sweep(pids []int, before map[string]bool) map[string]bool {
	ents, err := os.ReadDir(w.board)
	if err != nil {
		return before
	}
	now := make(map[string]bool)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || slices.Contains(pids, pid) {
			continue
		}
		if before[e.Name()] {
			_ = os.Remove(filepath.Join(w.board, e.Name())) // gone already: nothing to do
			continue
		}
		now[e.Name()] = true
	}
	return now
}
