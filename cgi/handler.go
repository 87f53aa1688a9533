package cgi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/internal/linelog"
	"github.com/rs/zerolog"
)

// Defaults for the zero fields of [Handler].
const (
	DefaultTimeout        = 60 * time.Second
	DefaultKillGrace      = 3 * time.Second
	DefaultMaxQueue       = 1024
	DefaultQueueTimeout   = 30 * time.Second
	DefaultMaxRequestBody = 1 << 30 // Apache's LimitRequestBody default
	DefaultSpoolMemory    = 1 << 20
	DefaultMaxStderrLine  = 4 << 10
	DefaultMaxStderrBytes = 64 << 10
	DefaultServerSoftware = "ferry"
	maxLocalRedirects     = 10 // as Apache's LimitInternalRecursion
)

// DefaultInheritEnv returns the names of the variables of ferry's own
// environment a script gets when [Handler.InheritEnv] is nil.
func DefaultInheritEnv() []string {
	return []string{"PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR"}
}

const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// Handler runs a CGI script for each request (RFC 3875), one process per
// request, and sends the script's response to the client.
//
// Each script runs in its own process group with an explicit environment: the
// meta-variables, the variables named in InheritEnv taken from ferry's own
// environment, and Env. Its working directory is the script's directory. It is
// stopped (SIGTERM to the whole group, SIGKILL after KillGrace) when it runs
// longer than Timeout or when the client goes away. Its stderr is logged line
// by line with the script name and request, within bounds.
//
// A Handler must not be copied after first use.
type Handler struct {
	// Path is the script to run. [Dir] sets it per request.
	Path string
	// Args are extra arguments for the script.
	Args []string
	// ScriptName is SCRIPT_NAME, the URL path the script is mounted at; the
	// rest of the request path after it is PATH_INFO. If empty, the whole
	// path is PATH_INFO.
	ScriptName string
	// DocumentRoot is DOCUMENT_ROOT, and the base of PATH_TRANSLATED. If empty,
	// the script's directory is used.
	DocumentRoot string
	// Env holds extra "KEY=VALUE" variables for every script. They cannot
	// override meta-variables.
	Env []string
	// InheritEnv names variables passed from ferry's environment. If nil,
	// DefaultInheritEnv() is used. PATH defaults to /usr/local/bin:/usr/bin:/bin.
	InheritEnv []string
	// ServerSoftware is SERVER_SOFTWARE. If empty, "ferry" is used.
	ServerSoftware string
	// PassAuthorization gives scripts the Authorization and
	// Proxy-Authorization headers as HTTP_AUTHORIZATION and
	// HTTP_PROXY_AUTHORIZATION, for scripts that check credentials
	// themselves. If false, they are withheld, as RFC 3875 § 4.1.18 advises
	// and Apache does (CGIPassAuth Off).
	PassAuthorization bool

	// Timeout is the wall-clock limit for a script. If zero, DefaultTimeout;
	// if negative, none.
	Timeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL. If zero,
	// DefaultKillGrace.
	KillGrace time.Duration
	// MaxConcurrent bounds how many scripts run at once. If zero, four per CPU.
	MaxConcurrent int
	// MaxQueue bounds how many requests wait for a slot; past it they get 503.
	// If zero, DefaultMaxQueue.
	MaxQueue int
	// QueueTimeout bounds the wait for a slot; past it a request gets 503. If
	// zero, DefaultQueueTimeout.
	QueueTimeout time.Duration
	// Limiter, if set, is used instead of one built from MaxConcurrent,
	// MaxQueue and QueueTimeout, so that several handlers can share it.
	Limiter *Limiter

	// MaxRequestBody bounds request bodies; larger ones get 413. If zero,
	// DefaultMaxRequestBody (1 GiB).
	MaxRequestBody int64
	// SpoolMemory is how much of a chunked request body is held in memory
	// before it goes to a temporary file in TempDir. If zero,
	// DefaultSpoolMemory.
	SpoolMemory int64
	// TempDir holds spooled bodies. If empty, os.TempDir().
	TempDir string
	// HeaderLimits bounds the script's response header block.
	HeaderLimits HeaderLimits
	// MaxStderrLine bounds one logged stderr line; a longer line is logged
	// in pieces marked "split". If zero, DefaultMaxStderrLine.
	MaxStderrLine int
	// MaxStderrBytes bounds the stderr logged per request; the rest is read
	// and dropped. If zero, DefaultMaxStderrBytes.
	MaxStderrBytes int64

	// Logger receives stderr lines, exit statuses and errors. A logger in the
	// request's context (zerolog.Ctx) takes precedence. If both are absent,
	// JSON lines go to os.Stderr.
	Logger *zerolog.Logger
	// LocalRedirect serves local redirects (RFC 3875 § 6.2.2): a script's
	// "Location: /path" with no Status becomes a GET of /path served by this
	// handler. If nil, the Handler (or the Dir) itself serves it.
	LocalRedirect http.Handler

	once    sync.Once
	limiter *Limiter
	inherit []string
	logger  zerolog.Logger
}

func (h *Handler) init() {
	h.once.Do(func() {
		h.limiter = h.Limiter
		if h.limiter == nil {
			n := h.MaxConcurrent
			if n <= 0 {
				n = 4 * runtime.NumCPU()
			}
			h.limiter = NewLimiter(n, orDefault(h.MaxQueue, DefaultMaxQueue), durOr(h.QueueTimeout, DefaultQueueTimeout))
		}
		h.inherit = InheritedEnv(h.InheritEnv)
		if h.Logger != nil {
			h.logger = *h.Logger
		} else {
			h.logger = zerolog.New(os.Stderr).With().Timestamp().Logger()
		}
	})
}

// InheritedEnv returns the "NAME=value" entries of ferry's own environment
// for names (DefaultInheritEnv() if nil), with PATH set to
// /usr/local/bin:/usr/bin:/bin when ferry has none: what scripts and spawned
// workers get from ferry.
func InheritedEnv(names []string) []string {
	if names == nil {
		names = DefaultInheritEnv()
	}
	var env []string
	for _, name := range names {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		} else if name == "PATH" {
			env = append(env, "PATH="+defaultPath)
		}
	}
	return env
}

// Clone returns a Handler with h's settings and none of its state: unless
// Limiter is set, the clone gets its own concurrency limit.
func (h *Handler) Clone() *Handler {
	return &Handler{
		Path: h.Path, Args: h.Args, ScriptName: h.ScriptName, DocumentRoot: h.DocumentRoot,
		Env: h.Env, InheritEnv: h.InheritEnv, ServerSoftware: h.ServerSoftware, PassAuthorization: h.PassAuthorization,
		Timeout: h.Timeout, KillGrace: h.KillGrace, MaxConcurrent: h.MaxConcurrent,
		MaxQueue: h.MaxQueue, QueueTimeout: h.QueueTimeout, Limiter: h.Limiter,
		MaxRequestBody: h.MaxRequestBody, SpoolMemory: h.SpoolMemory, TempDir: h.TempDir,
		HeaderLimits: h.HeaderLimits, MaxStderrLine: h.MaxStderrLine, MaxStderrBytes: h.MaxStderrBytes,
		Logger: h.Logger, LocalRedirect: h.LocalRedirect,
	}
}

func durOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func (h *Handler) log(r *http.Request) *zerolog.Logger {
	if l := zerolog.Ctx(r.Context()); l.GetLevel() != zerolog.Disabled {
		return l
	}
	return &h.logger
}

// ServeHTTP runs h.Path for r.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	name := strings.TrimSuffix(h.ScriptName, "/")
	rest, ok := strings.CutPrefix(r.URL.Path, name)
	if !ok || (rest != "" && rest[0] != '/') {
		http.NotFound(w, r)
		return
	}
	path, err := filepath.Abs(h.Path)
	if err != nil {
		h.log(r).Error().Err(err).Str("script", h.Path).Msg("cgi: bad script path")
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	h.serve(w, r, Script{Name: name, PathInfo: rest, Filename: path, Root: h.DocumentRoot}, h)
}

// serve runs the script s.Filename for r. self serves local redirects when
// h.LocalRedirect is nil.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, s Script, self http.Handler) {
	h.init()
	log := h.log(r)
	// A script may answer before it has read all its stdin, as CGI lets
	// it; net/http would then drain and close the request body at the
	// first write of the response, and the script's stdin would end
	// early. Full duplex keeps the body flowing to it. Other fronts
	// (FastCGI, SCGI) do not support it and need not.
	_ = http.NewResponseController(w).EnableFullDuplex() // ErrNotSupported there
	if s.Root == "" {
		s.Root = filepath.Dir(s.Filename)
	}

	// Request body: CONTENT_LENGTH must be exact, so a body of unknown length
	// is spooled first; so is an NPH script's, since the script may take
	// over the connection before the body has been read.
	r, stdin, sp, status, err := ExactBody(r, BodyLimits{Max: h.MaxRequestBody, Memory: h.SpoolMemory, TempDir: h.TempDir}, isNPH(s.Filename))
	if err != nil {
		log.Warn().Err(err).Str("script", s.Filename).Msg("cgi: request body refused")
		http.Error(w, fmt.Sprintf("%d %s", status, http.StatusText(status)), status)
		return
	}
	var stdinFile *os.File
	if sp != nil {
		defer sp.Close()
		if stdinFile = sp.File(); stdinFile != nil {
			stdin = nil // the spool file itself is the script's stdin
		}
	}

	env := make([]string, 0, 40+len(r.Header)+len(h.inherit)+len(h.Env))
	env = append(env, h.inherit...)
	env = append(env, h.Env...)
	env, err = AppendEnv(env, r, s, orString(h.ServerSoftware, DefaultServerSoftware))
	if err != nil {
		log.Warn().Err(err).Str("script", s.Filename).Msg("cgi: refusing request")
		status := http.StatusBadRequest
		if errors.Is(err, ErrEnvTooLarge) {
			status = http.StatusRequestHeaderFieldsTooLarge
		}
		http.Error(w, fmt.Sprintf("%d %s", status, http.StatusText(status)), status)
		return
	}
	if !h.PassAuthorization {
		env = slices.DeleteFunc(env, isCredentialVar)
	}

	if err := h.limiter.Acquire(r.Context()); err != nil {
		if errors.Is(err, ErrNoSlot) {
			log.Warn().Str("script", s.Filename).Int("running", h.limiter.Running()).Msg("cgi: overloaded, answering 503")
			w.Header().Set("Retry-After", "1")
			http.Error(w, "503 Service Unavailable", http.StatusServiceUnavailable)
		}
		return
	}
	held := true
	defer func() {
		if held { // run panicked to abort the response
			h.limiter.Release()
		}
	}()
	run := &scriptRun{h: h, w: w, r: r, s: s, log: log}
	loc := run.run(env, stdin, stdinFile)
	h.limiter.Release()
	held = false
	if loc != "" {
		// The script has been reaped and its slot freed: the redirect does
		// not hold two.
		next := h.LocalRedirect
		if next == nil {
			next = self
		}
		localRedirect(w, r, loc, next, log)
	}
}

type redirectDepthKey struct{}

// localRedirect serves loc as a new GET request (RFC 3875 § 6.2.2).
func localRedirect(w http.ResponseWriter, r *http.Request, loc string, next http.Handler, log *zerolog.Logger) {
	depth, _ := r.Context().Value(redirectDepthKey{}).(int)
	if depth >= maxLocalRedirects {
		log.Error().Str("location", loc).Msg("cgi: too many local redirects")
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	u, err := url.ParseRequestURI(loc)
	if err != nil {
		log.Error().Err(err).Str("location", loc).Msg("cgi: bad local redirect")
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		return
	}
	nr := r.Clone(context.WithValue(r.Context(), redirectDepthKey{}, depth+1))
	nr.Method = http.MethodGet
	nr.URL = u
	nr.RequestURI = loc
	nr.Body = http.NoBody
	nr.ContentLength = 0
	nr.TransferEncoding = nil
	nr.Header.Del("Content-Length")
	nr.Header.Del("Content-Type")
	log.Debug().Str("location", loc).Msg("cgi: local redirect")
	next.ServeHTTP(w, nr)
}

func orDefault64(v, def int64) int64 {
	if v <= 0 {
		return def
	}
	return v
}

func orString(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// isCredentialVar reports the variables that carry the client's credentials.
func isCredentialVar(kv string) bool {
	return strings.HasPrefix(kv, "HTTP_AUTHORIZATION=") || strings.HasPrefix(kv, "HTTP_PROXY_AUTHORIZATION=")
}

// readerPool holds the readers of scripts' stdout and stderr, and of
// applications' responses.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

func getReader(r io.Reader) *bufio.Reader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

// isNPH reports whether a script is a non-parsed-header script (RFC 3875 § 5:
// its name starts with "nph-").
func isNPH(path string) bool {
	return strings.HasPrefix(filepath.Base(path), "nph-")
}

// scriptRun is one execution of a script.
type scriptRun struct {
	h   *Handler
	w   http.ResponseWriter
	r   *http.Request
	s   Script
	log *zerolog.Logger

	cmd      *exec.Cmd
	stopOnce sync.Once
	stopped  chan struct{} // closed when the script has been reaped
	timedOut atomic.Bool
	answered bool   // ferry answered itself (502, 504): nothing of the script's was sent
	location string // a local redirect to serve once the script is done
}

// run runs the script and answers the client, unless the script asked for a
// local redirect: then nothing is sent and its location is returned.
func (run *scriptRun) run(env []string, stdin io.Reader, stdinFile *os.File) (localRedirect string) {
	h, s, log := run.h, run.s, run.log
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		run.fail(http.StatusInternalServerError, err, "cgi: creating stdout pipe")
		return ""
	}
	defer stdoutR.Close()
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		stdoutW.Close()
		run.fail(http.StatusInternalServerError, err, "cgi: creating stderr pipe")
		return ""
	}
	defer stderrR.Close()

	var stdinR, stdinW *os.File
	if stdin != nil {
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			stdoutW.Close()
			stderrW.Close()
			run.fail(http.StatusInternalServerError, err, "cgi: creating stdin pipe")
			return ""
		}
	}

	cmd := &exec.Cmd{
		Path:        s.Filename,
		Args:        append([]string{s.Filename}, h.Args...),
		Dir:         filepath.Dir(s.Filename),
		Env:         env,
		Stdout:      stdoutW,
		Stderr:      stderrW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	switch {
	case stdinFile != nil:
		cmd.Stdin = stdinFile
	case stdinR != nil:
		cmd.Stdin = stdinR
	}
	run.cmd = cmd
	err = cmd.Start()
	// The child has its copies; ours must go so that EOF is seen.
	stdoutW.Close()
	stderrW.Close()
	if stdinR != nil {
		stdinR.Close()
	}
	if err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		run.fail(http.StatusBadGateway, err, "cgi: starting script")
		return ""
	}
	start := time.Now()

	// Stop the script when the client goes away or it runs too long.
	run.stopped = make(chan struct{})
	stopWatch := context.AfterFunc(run.r.Context(), func() { run.stop("client gone") })
	var timeout *time.Timer
	if d := durOr(h.Timeout, DefaultTimeout); d > 0 {
		timeout = time.AfterFunc(d, func() {
			run.timedOut.Store(true)
			run.stop("timeout")
		})
	}

	var stdinDone chan struct{}
	if stdinW != nil {
		stdinDone = make(chan struct{})
		go run.copyStdin(stdinDone, stdinW, stdin)
	}
	stderrDone := make(chan struct{})
	go run.logStderr(stderrDone, stderrR)

	status, nbytes, outErr := run.respond(stdoutR)

	if outErr != nil {
		// We will read no more: the script must not block on a full pipe.
		run.stop("response aborted")
	}
	waitErr := cmd.Wait()
	close(run.stopped)
	stopWatch()
	if timeout != nil {
		timeout.Stop()
	}
	// A stdin copy still running is stuck writing to a script that no longer
	// reads, or reading a slow client's upload: wake it either way.
	if stdinW != nil {
		stdinW.Close()
		select {
		case <-stdinDone:
		default:
			_ = http.NewResponseController(run.w).SetReadDeadline(time.Now()) // unsupported: the copy ends with the request
			<-stdinDone
		}
	}
	// Grandchildren may still hold stderr; give the logger a moment, then
	// stop reading.
	select {
	case <-stderrDone:
	default:
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-stderrDone:
		case <-t.C:
			stderrR.Close()
			<-stderrDone
		}
		t.Stop()
	}

	ev := log.Debug()
	if waitErr != nil || outErr != nil {
		ev = log.Warn()
	}
	ev = ev.Str("script", s.Filename).Int("status", status).Int64("bytes", nbytes).Dur("duration", time.Since(start))
	if waitErr != nil {
		ev = ev.Str("exit", waitErr.Error())
	} else {
		ev = ev.Int("exit_code", cmd.ProcessState.ExitCode())
	}
	if run.timedOut.Load() {
		ev = ev.Bool("timed_out", true)
	}
	if outErr != nil {
		ev = ev.AnErr("error", outErr)
	}
	ev.Msg("cgi: script finished")

	var ce *ClientError
	killed := waitErr != nil && cmd.ProcessState != nil && !cmd.ProcessState.Exited()
	if status != 0 && !run.answered && !errors.As(outErr, &ce) && run.r.Context().Err() == nil &&
		(outErr != nil || run.timedOut.Load() || killed) {
		// The response was under way when the script's side broke (a read
		// error, a timeout, a crash): the client must not take a truncated
		// body for a whole one.
		panic(http.ErrAbortHandler)
	}
	return run.location
}

// respond reads the script's output and answers the client. status is the
// status sent (0 if none was), n the body bytes sent.
func (run *scriptRun) respond(stdout *os.File) (status int, n int64, err error) {
	h, w, r, log := run.h, run.w, run.r, run.log
	nph := isNPH(run.s.Filename)

	var raw *bytes.Buffer
	var src io.Reader = stdout
	if nph {
		raw = new(bytes.Buffer)
		src = io.TeeReader(stdout, raw)
	}
	br := getReader(src)
	defer putReader(br)
	resp, err := ReadResponse(br, nph, h.HeaderLimits)
	if err != nil {
		switch {
		case r.Context().Err() != nil:
			return 0, 0, r.Context().Err()
		case run.timedOut.Load():
			log.Error().Str("script", run.s.Filename).Dur("timeout", durOr(h.Timeout, DefaultTimeout)).Msg("cgi: script timed out before sending headers")
			http.Error(w, "504 Gateway Timeout", http.StatusGatewayTimeout)
			run.answered = true
			return http.StatusGatewayTimeout, 0, err
		}
		log.Error().Err(err).Str("script", run.s.Filename).Msg("cgi: bad script response")
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		run.answered = true
		return http.StatusBadGateway, 0, err
	}

	switch {
	case nph:
		if conn, bufrw, herr := http.NewResponseController(w).Hijack(); herr == nil {
			// RFC 3875 § 5: the script's own status line and headers go to
			// the client untouched, and the connection ends with the body.
			defer conn.Close()
			if bufrw.Reader.Buffered() > 0 {
				// Pipelined bytes of a next request are dropped with the
				// connection.
				log.Debug().Msg("cgi: dropping pipelined input after NPH response")
			}
			n, err := io.Copy(conn, io.MultiReader(bytes.NewReader(raw.Bytes()), stdout))
			if err != nil {
				err = &ClientError{err}
			}
			return resp.Status, n, err
		}
		n, err := copyResponse(w, resp, br, stdout)
		return resp.Status, n, err
	case resp.Kind == LocalRedirect:
		// § 6.2.2: nothing of this response is sent; the script is left to
		// finish, and the caller serves the new location.
		_, _ = io.Copy(io.Discard, br) // a read error ends the drain; the script is stopped then
		run.location = resp.Location
		return 0, 0, nil
	}
	n, err = copyResponse(w, resp, br, stdout)
	return resp.Status, n, err
}

// stop ends the script: SIGTERM to its process group, then SIGKILL after the
// grace period unless it has been reaped by then.
func (run *scriptRun) stop(why string) {
	run.stopOnce.Do(func() {
		pid := run.cmd.Process.Pid
		run.log.Debug().Str("script", run.s.Filename).Int("pid", pid).Str("why", why).Msg("cgi: stopping script")
		// Errors mean the group is already gone.
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		grace := durOr(run.h.KillGrace, DefaultKillGrace)
		go func() {
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-t.C:
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			case <-run.stopped:
				// Reaped: the leader is gone, but its group may live on.
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}()
	})
}

// copyStdin copies the request body to the script's stdin.
func (run *scriptRun) copyStdin(done chan<- struct{}, dst *os.File, src io.Reader) {
	defer close(done)
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, os.ErrClosed) {
		run.log.Debug().Err(err).Str("script", run.s.Filename).Msg("cgi: copying request body")
	}
}

// logStderr logs the script's stderr line by line, within the handler's
// bounds, and keeps reading past them so the script never blocks.
func (run *scriptRun) logStderr(done chan<- struct{}, f *os.File) {
	defer close(done)
	lw := linelog.Writer{
		Event:    func() *zerolog.Event { return run.log.Warn().Str("script", run.s.Filename) },
		Msg:      "cgi: script stderr",
		MaxLine:  orDefault(run.h.MaxStderrLine, DefaultMaxStderrLine),
		MaxBytes: orDefault64(run.h.MaxStderrBytes, DefaultMaxStderrBytes),
		DropMsg:  "cgi: stderr limit reached; dropping the rest",
	}
	lw.ReadFrom(f) // ends when the script and its children are gone, or f is closed
	lw.Flush()
}

// fail answers with status after an error on ferry's side.
func (run *scriptRun) fail(status int, err error, msg string) {
	run.log.Error().Err(err).Str("script", run.s.Filename).Msg(msg)
	http.Error(run.w, fmt.Sprintf("%d %s", status, http.StatusText(status)), status)
}
