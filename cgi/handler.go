package cgi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrygw/ferry/internal/defaults"
	"github.com/ferrygw/ferry/internal/linelog"
	"github.com/rs/zerolog"
)

// Defaults for the zero fields of [Handler] and [Settings].
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
// request, and sends the script's response to the client. Its Resolver
// says which script: [Dir] for a directory of scripts (Apache's
// ScriptAlias), [FilenameDir] for the SCRIPT_FILENAME a front web server
// sends; without one, Path mounted at ScriptName.
//
// Each script runs in its own process group with an explicit environment: the
// meta-variables, the variables named in InheritEnv taken from ferry's own
// environment, and Env. Its working directory is the script's directory. It is
// stopped (SIGTERM to the whole group, SIGKILL after KillGrace) when it runs
// longer than Timeout or when the client goes away. Its stderr is logged line
// by line with the script name and request, within bounds.
//
// Sizes, counts and durations that are zero or negative take their
// defaults, unless a field says otherwise.
//
// A Handler must not be copied after first use.
type Handler struct {
	// Settings are the meta-variables, limits and logger every gateway
	// shares.
	Settings

	// Resolver says which script a request runs. If nil, Path, mounted at
	// ScriptName, with DocumentRoot: a [Mount].
	Resolver Resolver
	// Path is the script to run when Resolver is nil.
	Path string
	// Args are extra arguments for the script.
	Args []string
	// ScriptName is SCRIPT_NAME when Resolver is nil, the URL path Path is
	// mounted at; the rest of the request path after it is PATH_INFO. If
	// empty, the whole path is PATH_INFO.
	ScriptName string
	// DocumentRoot is DOCUMENT_ROOT when Resolver is nil, and the base of
	// PATH_TRANSLATED. For any script whose resolver gives none, the
	// DOCUMENT_ROOT a FastCGI or SCGI front sent ([Origin]) is used, as
	// fcgiwrap passes it on, else the script's directory.
	DocumentRoot string
	// InheritEnv names variables passed from ferry's environment. If nil,
	// DefaultInheritEnv() is used. PATH defaults to /usr/local/bin:/usr/bin:/bin.
	InheritEnv []string
	// PassAuthorization gives scripts the Authorization and
	// Proxy-Authorization headers as HTTP_AUTHORIZATION and
	// HTTP_PROXY_AUTHORIZATION, for scripts that check credentials
	// themselves. If false, they are withheld, as RFC 3875 § 4.1.18 advises
	// and Apache does (CGIPassAuth Off).
	PassAuthorization bool

	// Timeout is the wall-clock limit for a script. If zero, DefaultTimeout;
	// if negative, none.
	Timeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL. If zero or
	// negative, DefaultKillGrace.
	KillGrace time.Duration
	// MaxConcurrent bounds how many scripts run at once. If zero or
	// negative, four per CPU.
	MaxConcurrent int
	// MaxQueue bounds how many requests wait for a slot; past it they get 503.
	// If zero or negative, DefaultMaxQueue.
	MaxQueue int
	// QueueTimeout bounds the wait for a slot; past it a request gets 503. If
	// zero or negative, DefaultQueueTimeout.
	QueueTimeout time.Duration
	// Limiter, if set, is used instead of one built from MaxConcurrent,
	// MaxQueue and QueueTimeout, so that several handlers can share it.
	Limiter *Limiter

	// MaxStderrLine bounds one logged stderr line; a longer line is logged
	// in pieces marked "split". If zero or negative, DefaultMaxStderrLine.
	MaxStderrLine int
	// MaxStderrBytes bounds the stderr logged per request; the rest is read
	// and dropped. If zero or negative, DefaultMaxStderrBytes.
	MaxStderrBytes int64

	// RedirectHandler serves local redirects (RFC 3875 § 6.2.2): a
	// script's "Location: /path" with no Status (a response of kind
	// [LocalRedirect]) becomes a GET of /path served by this handler. If
	// nil, the Handler itself serves it.
	RedirectHandler http.Handler

	// Script processes: who they run as, what they may use, what may
	// outlive their request. The RLimit settings are set on the script's
	// process before it runs its first instruction, and its children
	// inherit them; they need Linux. The package documentation tables what
	// a client gets from a script that misbehaves.

	// User is the user scripts run as: a name or a numeric uid. If empty,
	// scripts run as ferry's own user, except when ferry runs as root: then
	// they run as DefaultUser() (www-data if it exists, else nobody), and
	// only User "root" runs them as root. The user's groups in the group
	// database become the scripts' supplementary groups. Running scripts as
	// another user needs ferry to run as root, and the scripts and their
	// directories to be readable by that user.
	User string
	// Group is the group scripts run as: a name or a numeric gid. If empty,
	// the user's primary group (a numeric User with no entry in the user
	// database needs a Group).
	Group string
	// KeepBackground lets the processes a script leaves running in the
	// background (a daemon it starts) outlive its request. If false, once
	// the script has exited and its response is sent, what is left of its
	// process group gets SIGTERM, and SIGKILL after KillGrace. Either way a
	// background process still holding the script's stdout does not keep
	// the response open (it ends a moment after the script exits, with a
	// warning), and a script stopped for its timeout or its client takes
	// its whole process group with it.
	KeepBackground bool
	// RLimitCPU bounds each script process's CPU time (RLIMIT_CPU, as
	// Apache's RLimitCPU), rounded up to whole seconds: SIGXCPU at it,
	// SIGKILL a second later. If zero, no bound.
	RLimitCPU time.Duration
	// RLimitAS bounds each script process's address space in bytes
	// (RLIMIT_AS, as Apache's RLimitMEM): allocations past it fail. An
	// interpreter needs tens of megabytes to start. If zero, no bound.
	RLimitAS int64
	// RLimitNProc bounds the processes of the scripts' user (RLIMIT_NPROC,
	// as Apache's RLimitNPROC): a fork past it fails. The kernel counts
	// every process of that user, not one script's, and does not apply it
	// to root. If zero, no bound.
	RLimitNProc int64
	// RLimitNoFile bounds the files each script process may have open
	// (RLIMIT_NOFILE). If zero, ferry's own starting limit.
	RLimitNoFile int64
	// MaxOutput bounds the response body a script may send, in bytes. Past
	// it the response is cut visibly (the connection is reset, or the
	// chunked body never ends), the script is stopped and the cut logged.
	// If zero, no bound.
	MaxOutput int64

	once     sync.Once
	resolver Resolver
	limiter  *Limiter
	inherit  []string
	logger   zerolog.Logger
	cred     *syscall.Credential // from User and Group; nil: ferry's own
	credErr  error
	limits   []rlimit
}

func (h *Handler) init() {
	h.once.Do(func() {
		h.resolver = h.Resolver
		if h.resolver == nil {
			if path, err := filepath.Abs(h.Path); err != nil {
				err = statusError(http.StatusInternalServerError, fmt.Errorf("cgi: bad script path %s: %w", h.Path, err))
				h.resolver = ResolverFunc(func(*http.Request) (Script, error) { return Script{}, err })
			} else {
				h.resolver = Mount{Prefix: h.ScriptName, Filename: path, Root: h.DocumentRoot}
			}
		}
		h.limiter = h.Limiter
		if h.limiter == nil {
			n := h.MaxConcurrent
			if n <= 0 {
				n = 4 * runtime.NumCPU()
			}
			h.limiter = NewLimiter(n, defaults.Or(h.MaxQueue, DefaultMaxQueue), defaults.Or(h.QueueTimeout, DefaultQueueTimeout))
		}
		h.inherit = InheritedEnv(h.InheritEnv)
		if h.Logger != nil {
			h.logger = *h.Logger
		} else {
			h.logger = zerolog.New(os.Stderr).With().Timestamp().Logger()
		}
		h.cred, h.credErr = scriptCredential(h.User, h.Group, os.Geteuid())
		h.limits = h.rlimits()
	})
}

// timeout returns the wall-clock limit for a script; negative is none.
func (h *Handler) timeout() time.Duration {
	if h.Timeout == 0 {
		return DefaultTimeout
	}
	return h.Timeout
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
		Settings: h.Settings, Resolver: h.Resolver,
		Path: h.Path, Args: h.Args, ScriptName: h.ScriptName, DocumentRoot: h.DocumentRoot,
		InheritEnv: h.InheritEnv, PassAuthorization: h.PassAuthorization,
		Timeout: h.Timeout, KillGrace: h.KillGrace, MaxConcurrent: h.MaxConcurrent,
		MaxQueue: h.MaxQueue, QueueTimeout: h.QueueTimeout, Limiter: h.Limiter,
		MaxStderrLine: h.MaxStderrLine, MaxStderrBytes: h.MaxStderrBytes,
		RedirectHandler: h.RedirectHandler,
		User:            h.User, Group: h.Group, KeepBackground: h.KeepBackground, RLimitCPU: h.RLimitCPU, RLimitAS: h.RLimitAS,
		RLimitNProc: h.RLimitNProc, RLimitNoFile: h.RLimitNoFile, MaxOutput: h.MaxOutput,
	}
}

func (h *Handler) log(r *http.Request) *zerolog.Logger { return LoggerFrom(r.Context(), &h.logger) }

// ServeHTTP resolves r's script and runs it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	s, err := h.resolver.Resolve(r)
	h.ServeScript(w, r, s, err)
}

var errNoFilename = statusError(http.StatusInternalServerError, errors.New("cgi: the resolver named no script file"))

// ServeScript runs the script s.Filename for r or, if err is not nil,
// answers for the error resolving it (see [Resolver]).
func (h *Handler) ServeScript(w http.ResponseWriter, r *http.Request, s Script, err error) {
	h.init()
	log := h.log(r)
	if err == nil && s.Filename == "" {
		err = errNoFilename
	}
	if err != nil {
		answerNoScript(w, r, log, err, "cgi: no script")
		return
	}
	// A script may answer before it has read all its stdin, as CGI lets
	// it; net/http would then drain and close the request body at the
	// first write of the response, and the script's stdin would end
	// early. Full duplex keeps the body flowing to it. Other fronts
	// (FastCGI, SCGI) do not support it and need not.
	if http.NewResponseController(w).EnableFullDuplex() == nil {
		// In full duplex, net/http drains what is left of the body only
		// after the handler, when the background read that reaching its
		// end starts can no longer be stopped, and the next request's
		// read then panics ("invalid concurrent Body.Read call",
		// go.dev/issue/68560). Closed here, the body is drained while
		// net/http still stops that read.
		defer r.Body.Close()
	}
	if s.Root == "" {
		s.Root = frontRoot(r)
	}
	if s.Root == "" {
		s.Root = filepath.Dir(s.Filename)
	}

	// Request body: CONTENT_LENGTH must be exact, so a body of unknown length
	// is spooled first; so is an NPH script's, since the script may take
	// over the connection before the body has been read.
	r, stdin, sp, err := ExactBody(r, h.BodyLimits, isNPH(s.Filename))
	if err != nil {
		h.refuse(w, r, log, zerolog.WarnLevel, err, s.Filename, "cgi: request body refused")
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
	env, err = AppendEnv(env, r, s, h.software())
	if err != nil {
		h.refuse(w, r, log, zerolog.WarnLevel, err, s.Filename, "cgi: refusing request")
		return
	}
	if !h.PassAuthorization {
		env = slices.DeleteFunc(env, isCredentialVar)
	}

	if err := h.limiter.Acquire(r.Context()); err != nil {
		if errors.Is(err, ErrNoSlot) {
			l := log.With().Int("running", h.limiter.Running()).Logger()
			h.refuse(w, r, &l, zerolog.WarnLevel, statusError(http.StatusServiceUnavailable, err), s.Filename, "cgi: overloaded, answering 503")
		}
		return
	}
	// The run gives the slot back when the script has exited, which may be
	// after its response (a script that closes stdout and works on).
	run := &scriptRun{h: h, w: w, r: r, s: s, log: log, release: h.limiter.Release}
	loc := run.run(env, stdin, stdinFile)
	if loc != "" {
		if _, ok := h.resolver.(*FilenameDir); ok {
			// The front web server maps URLs to scripts (SCRIPT_FILENAME),
			// not ferry: served here, the redirect's SCRIPT_FILENAME would
			// name this script again (it ran maxLocalRedirects times, then
			// 500). Handed back, as fcgiwrap hands it to nginx.
			FrontRedirect(w, loc)
			return
		}
		// The script has been reaped and its slot freed: the redirect does
		// not hold two.
		next := h.RedirectHandler
		if next == nil {
			next = h
		}
		localRedirect(w, r, loc, next, log)
	}
}

// refuse answers for a request the script was not run for, with a log line
// naming the script.
func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, log *zerolog.Logger, lvl zerolog.Level, err error, script, msg string) {
	l := log.With().Str("script", script).Logger()
	answerError(w, r, &l, lvl, StatusOf(err), err, "", msg)
}

type redirectDepthKey struct{}

// FrontRedirect answers a local redirect (RFC 3875 § 6.2.2) to loc that
// ferry does not serve itself but leaves to the front web server in front
// of it (nginx, Apache, lighttpd over FastCGI or SCGI): 302 with loc as
// Location, which is what nginx makes of the same answer from fcgiwrap.
func FrontRedirect(w http.ResponseWriter, loc string) {
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusFound)
}

// localRedirect serves loc as a new GET request (RFC 3875 § 6.2.2).
func localRedirect(w http.ResponseWriter, r *http.Request, loc string, next http.Handler, log *zerolog.Logger) {
	depth, _ := r.Context().Value(redirectDepthKey{}).(int)
	if depth >= maxLocalRedirects {
		log.Error().Str("location", loc).Msg("cgi: too many local redirects")
		http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
		return
	}
	// A fragment is the client's, never sent to a server (RFC 3986
	// § 3.5); ParseRequestURI would take it for part of the path or query.
	loc, _, _ = strings.Cut(loc, "#")
	u, err := url.ParseRequestURI(loc)
	if err != nil {
		log.Error().Err(err).Str("location", loc).Msg("cgi: bad local redirect")
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		return
	}
	ctx := context.WithValue(r.Context(), redirectDepthKey{}, depth+1)
	if origin := Origin(ctx); origin != nil {
		ctx = WithOrigin(ctx, redirectOrigin(origin, u))
	}
	nr := r.Clone(ctx)
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

// redirectOrigin returns the meta-variables a front web server sent,
// made for a local redirect to u: those it derives from the URL path are
// what it would send for a request of u, and how it mapped the old path to
// a script (SCRIPT_FILENAME, SCRIPT_NAME, PATH_INFO, PATH_TRANSLATED) is
// dropped, since it says nothing of the new one. The connection's and
// the front's other variables stay.
func redirectOrigin(origin map[string]string, u *url.URL) map[string]string {
	o := maps.Clone(origin)
	for _, name := range [...]string{"SCRIPT_FILENAME", "SCRIPT_NAME", "PATH_INFO", "PATH_TRANSLATED"} {
		delete(o, name)
	}
	for _, name := range [...]string{
		"DOCUMENT_URI", // nginx's $document_uri: the decoded path
		"SCRIPT_URL",   // Apache's mod_rewrite: the decoded path
	} {
		if _, ok := o[name]; ok {
			o[name] = u.Path
		}
	}
	if v, ok := o["SCRIPT_URI"]; ok {
		// Apache's mod_rewrite: scheme://host[:port] and the decoded path.
		_, rest, found := strings.Cut(v, "://")
		host, _, _ := strings.Cut(rest, "/")
		if found {
			o["SCRIPT_URI"] = v[:len(v)-len(rest)] + host + u.Path
		} else {
			delete(o, "SCRIPT_URI")
		}
	}
	return o
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

// Graces at a script's end.
const (
	// exitGrace is how long a script whose output has ended may take to
	// exit before its request ends without it: a script that closes stdout
	// and works on (the slow mail after the page) goes on alone until it
	// exits or times out.
	exitGrace = 100 * time.Millisecond
	// stdoutGrace is how long stdout may stay open after the script has
	// exited, for its children's last writes, before the processes
	// holding it are taken for careless background processes.
	stdoutGrace = 100 * time.Millisecond
	// stderrGrace bounds the wait for stderr's end after the script has
	// exited: grandchildren may hold it.
	stderrGrace = 100 * time.Millisecond
	// stdinGrace is how long the copy of a request body to a script that
	// has finished may take to end by itself before its read is cut.
	stdinGrace = 100 * time.Millisecond
	// bodyReadGrace bounds the wait for a woken request body read.
	bodyReadGrace = time.Second
)

// scriptRun is one execution of a script.
type scriptRun struct {
	h       *Handler
	w       http.ResponseWriter
	r       *http.Request
	s       Script
	log     *zerolog.Logger
	release func() // gives the script slot back, once the script has exited

	cmd        *exec.Cmd
	start      time.Time
	stdout     *scriptStdout
	stderr     *os.File
	stderrDone chan struct{} // closed when logStderr has returned
	timeout    *time.Timer   // nil: no timeout
	exited     chan struct{} // closed when the script's own process has been reaped
	waitErr    error         // from cmd.Wait, set before exited is closed
	stopOnce   sync.Once
	stopping   atomic.Bool // stop has been called
	leftOnce   sync.Once   // guards stopLeftovers
	timedOut   atomic.Bool
	stdinEnded atomic.Bool // endStdin has cut the body's copy
	answered   bool        // ferry answered itself (502, 503, 504): nothing of the script's was sent
	location   string      // a local redirect to serve once the script is done

	mu        sync.Mutex // guards responded and cutBy
	responded bool       // stdout has ended: the response is whole
	cutBy     string     // why the script was stopped before its response was whole
}

// run runs the script and answers the client, unless the script asked for a
// local redirect: then nothing is sent and its location is returned. It
// gives the script slot back when the script has exited: a script that
// closed its stdout and works on keeps it after run returns.
func (run *scriptRun) run(env []string, stdin io.Reader, stdinFile *os.File) (localRedirect string) {
	h, s, log := run.h, run.s, run.log
	detached := false
	defer func() {
		if !detached {
			run.release()
		}
	}()
	if h.credErr != nil {
		run.fail(http.StatusInternalServerError, h.credErr, "cgi: cannot run scripts as the configured user")
		return ""
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		run.fail(http.StatusInternalServerError, err, "cgi: creating stdout pipe")
		return ""
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		stdoutR.Close()
		stdoutW.Close()
		run.fail(http.StatusInternalServerError, err, "cgi: creating stderr pipe")
		return ""
	}
	// The pipes' read ends are closed in finish, which may run after run
	// returns.
	closeReaders := true
	defer func() {
		if closeReaders {
			stdoutR.Close()
			stderrR.Close()
		}
	}()

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
		SysProcAttr: h.sysProcAttr(),
	}
	switch {
	case stdinFile != nil:
		cmd.Stdin = stdinFile
	case stdinR != nil:
		cmd.Stdin = stdinR
	}
	run.cmd = cmd
	err = run.startProcess(h.limits)
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
	closeReaders = false
	run.start = time.Now()
	run.exited = make(chan struct{})
	go run.reap()

	run.stdout = &scriptStdout{f: stdoutR}
	// Stop the script when the request ends (the client goes away, the
	// server shuts down) or it runs too long. At its timeout the client
	// is answered at once: a script that ignores SIGTERM, and whatever
	// holds its stdout, must not make it wait KillGrace for the SIGKILL.
	stopWatch := context.AfterFunc(run.r.Context(), func() { run.stop("request ended") })
	if d := h.timeout(); d > 0 {
		run.timeout = time.AfterFunc(d, func() {
			run.timedOut.Store(true)
			run.stop("timeout")
			run.stdout.end()
		})
	}

	var stdinDone chan struct{}
	if stdinW != nil {
		stdinDone = make(chan struct{})
		go run.copyStdin(stdinDone, stdinW, stdin)
	}
	run.stderr, run.stderrDone = stderrR, make(chan struct{})
	go run.logStderr(run.stderrDone, stderrR)

	respDone, watchDone := make(chan struct{}), make(chan struct{})
	go run.watchStdout(respDone, watchDone)
	status, nbytes, outErr := run.respond()
	close(respDone)
	<-watchDone
	cutBy := run.endResponse()
	if outErr != nil {
		// We will read no more: the script must not block on a full pipe.
		run.stop("response aborted")
	}
	run.endStdin(stdinW, stdinDone)

	if outErr == nil && cutBy == "" && run.location == "" && !run.exitedWithin(exitGrace) {
		// The script closed its stdout and works on. Its response is
		// whole: the request ends now, and the script runs on alone until
		// it exits or times out, holding its slot.
		stopWatch()
		detached = true
		log.Debug().Str("script", s.Filename).Int("pid", cmd.Process.Pid).Msg("cgi: script closed its output and works on")
		go run.finish(status, nbytes, nil, true)
		return ""
	}
	var killed bool
	if run.timedOut.Load() && run.location == "" && !run.exitedWithin(exitGrace) {
		// Past its timeout and its SIGTERM, the script lives on: its
		// SIGKILL comes KillGrace later. The request ends now, as at any
		// timeout; the script holds its slot until it is gone.
		stopWatch()
		detached = true
		go run.finish(status, nbytes, outErr, true)
		killed = true // it will be; its ProcessState is the reaper's
	} else {
		<-run.exited
		stopWatch()
		run.finish(status, nbytes, outErr, false)
		killed = run.waitErr != nil && cmd.ProcessState != nil && !cmd.ProcessState.Exited()
	}
	var ce *ClientError
	clientGone := errors.As(outErr, &ce) && !errors.Is(outErr, errOutputTooLarge)
	if status != 0 && !run.answered && !clientGone && (outErr != nil || cutBy != "" || killed) {
		// The response was under way when the script's side broke (a
		// timeout, the request's end, a read error, a crash, too much
		// output): the client must not take a truncated body for a whole
		// one.
		why := cutBy
		switch {
		case errors.Is(outErr, errOutputTooLarge):
			why = fmt.Sprintf("output past MaxOutput (%d bytes)", h.MaxOutput)
		case why != "":
		case outErr != nil:
			why = outErr.Error()
		case detached:
			why = "timeout"
		default:
			why = cmd.ProcessState.String()
		}
		log.Warn().Str("script", s.Filename).Int("status", status).Int64("bytes", nbytes).Str("why", why).
			Msg("cgi: script ended mid-response; aborting the response")
		panic(http.ErrAbortHandler)
	}
	return run.location
}

// reap waits for the script's own process.
func (run *scriptRun) reap() {
	run.waitErr = run.cmd.Wait()
	close(run.exited)
}

// exitedWithin reports whether the script's own process exits within d.
func (run *scriptRun) exitedWithin(d time.Duration) bool { return closedWithin(run.exited, d) }

// closedWithin reports whether ch is closed within d.
func closedWithin(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	}
}

// endResponse records that the script's stdout has ended, and returns why
// the script had been stopped before, if it had: then the response is not
// whole.
func (run *scriptRun) endResponse() (cutBy string) {
	run.mu.Lock()
	defer run.mu.Unlock()
	run.responded = true
	return run.cutBy
}

// cutReason returns why the script was stopped before its response was
// whole, or "".
func (run *scriptRun) cutReason() string {
	run.mu.Lock()
	defer run.mu.Unlock()
	return run.cutBy
}

// finish waits for the script's own process, stops what it left running
// (unless KeepBackground), lets the stderr logger end, and logs how the
// script ended. After a detached request it gives the slot back.
func (run *scriptRun) finish(status int, nbytes int64, outErr error, detached bool) {
	<-run.exited
	if run.timeout != nil {
		run.timeout.Stop()
	}
	run.stopLeftovers(nil)
	run.stdout.f.Close()
	// Grandchildren may still hold stderr; give the logger a moment, then
	// stop reading.
	select {
	case <-run.stderrDone:
	default:
		t := time.NewTimer(stderrGrace)
		select {
		case <-run.stderrDone:
		case <-t.C:
			run.stderr.Close()
			<-run.stderrDone
		}
		t.Stop()
	}
	run.stderr.Close()

	ev := run.log.Debug()
	if run.waitErr != nil || outErr != nil || run.timedOut.Load() {
		ev = run.log.Warn()
	}
	ev = ev.Str("script", run.s.Filename).Int("status", status).Int64("bytes", nbytes).Dur("duration_ms", time.Since(run.start))
	if run.waitErr != nil {
		ev = ev.Str("exit", run.waitErr.Error())
	} else {
		ev = ev.Int("exit_code", run.cmd.ProcessState.ExitCode())
	}
	if run.timedOut.Load() {
		ev = ev.Bool("timed_out", true)
	}
	if detached {
		ev = ev.Bool("after_response", true)
	}
	if outErr != nil {
		ev = ev.AnErr("error", outErr)
	}
	ev.Msg("cgi: script finished")
	run.ended(outErr)
	if detached {
		run.release()
	}
}

// respond reads the script's output and answers the client. status is the
// status sent (0 if none was), n the body bytes sent.
func (run *scriptRun) respond() (status int, n int64, err error) {
	h, w, r, log := run.h, run.w, run.r, run.log
	nph := isNPH(run.s.Filename)
	stdout := run.stdout

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
		switch why := run.cutReason(); {
		case run.timedOut.Load():
			log.Error().Str("script", run.s.Filename).Dur("timeout_ms", h.timeout()).Msg("cgi: script timed out before sending headers")
			ObserverFrom(r.Context()).Failed(http.StatusGatewayTimeout, err)
			http.Error(w, "504 Gateway Timeout", http.StatusGatewayTimeout)
			run.answered = true
			return http.StatusGatewayTimeout, 0, err
		case why != "" || r.Context().Err() != nil:
			// Killed before it answered (the client went away, the server
			// is shutting down): never a clean-looking empty 200.
			if why == "" {
				why = "request ended"
			}
			log.Warn().Str("script", run.s.Filename).Str("why", why).AnErr("cause", context.Cause(r.Context())).
				Msg("cgi: script stopped before it answered; answering 503")
			http.Error(w, "503 Service Unavailable", http.StatusServiceUnavailable)
			run.answered = true
			return http.StatusServiceUnavailable, 0, err
		}
		log.Error().Err(err).Str("script", run.s.Filename).Msg("cgi: bad script response")
		ObserverFrom(r.Context()).Failed(http.StatusBadGateway, err)
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		run.answered = true
		return http.StatusBadGateway, 0, err
	}

	out := w
	if h.MaxOutput > 0 {
		out = &outputLimit{ResponseWriter: w, left: h.MaxOutput}
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
			var body io.Reader = io.MultiReader(bytes.NewReader(raw.Bytes()), stdout)
			if h.MaxOutput > 0 {
				head := int64(raw.Len() - br.Buffered()) // the header block, sent as is
				body = &outputLimitReader{r: body, left: head + h.MaxOutput}
			}
			n, err := io.Copy(conn, body)
			if errors.Is(err, errOutputTooLarge) || run.cutReason() != "" {
				// The connection's end frames the body: only a reset
				// tells the client it was cut.
				resetOnClose(conn)
			}
			if err != nil {
				err = &ClientError{err}
			}
			return resp.Status, n, err
		}
		n, err := copyResponse(out, resp, br, stdout)
		run.checkLength(resp, n, &err)
		return resp.Status, n, err
	case resp.Kind == LocalRedirect:
		// § 6.2.2: nothing of this response is sent; the script is left to
		// finish, and the caller serves the new location.
		_, _ = io.Copy(io.Discard, br) // a read error ends the drain; the script is stopped then
		run.location = resp.Location
		return 0, 0, nil
	}
	n, err = copyResponse(out, resp, br, stdout)
	run.checkLength(resp, n, &err)
	return resp.Status, n, err
}

// checkLength logs a body that did not match its Content-Length field. One
// past it was cut there and is whole: *err is cleared. One short of it is
// cut short for the client by the server, which closes the connection.
func (run *scriptRun) checkLength(resp *Response, n int64, err *error) {
	if errors.Is(*err, ErrPastContentLength) {
		run.log.Warn().Str("script", run.s.Filename).Int64("content_length", n).
			Msg("cgi: script sent more than its Content-Length; the rest was dropped")
		*err = nil
		return
	}
	v := resp.Header.Get("Content-Length")
	if *err != nil || v == "" || run.r.Method == http.MethodHead ||
		resp.Status == http.StatusNoContent || resp.Status == http.StatusNotModified {
		return
	}
	if l, perr := strconv.ParseInt(v, 10, 64); perr == nil && n < l {
		run.log.Warn().Str("script", run.s.Filename).Int64("content_length", l).Int64("bytes", n).
			Msg("cgi: script sent fewer body bytes than its Content-Length; the response is cut short")
	}
}

// stop ends the script: SIGTERM to its process group, then SIGKILL to the
// group once the script's own process has exited or after the grace
// period. A stop before the script's stdout has ended marks its response
// as cut.
func (run *scriptRun) stop(why string) {
	run.mu.Lock()
	if !run.responded && run.cutBy == "" {
		run.cutBy = why
	}
	run.mu.Unlock()
	run.stopOnce.Do(func() {
		run.stopping.Store(true)
		pid := run.cmd.Process.Pid
		run.log.Debug().Str("script", run.s.Filename).Int("pid", pid).Str("why", why).Msg("cgi: stopping script")
		// Errors mean the group is already gone.
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		grace := defaults.Or(run.h.KillGrace, DefaultKillGrace)
		go func() {
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-t.C:
			case <-run.exited:
				// Reaped: the leader is gone, but its group may live on.
			}
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}()
	})
}

// watchStdout ends the response of a script that has exited while its
// stdout stays open: after stdoutGrace, the processes holding it (children
// the script left in the background) are named in a warning and, unless
// KeepBackground, stopped; what the pipe holds ends the response. It
// returns when respDone is closed or it has done so.
func (run *scriptRun) watchStdout(respDone <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	select {
	case <-respDone:
		return
	case <-run.exited:
	}
	t := time.NewTimer(stdoutGrace)
	defer t.Stop()
	select {
	case <-respDone:
		return
	case <-t.C:
	}
	holders := pipeHolders(run.stdout.f)
	if len(holders) == 0 {
		return // the output ends by itself; the client is slow to take it
	}
	msg := "cgi: script exited but a background process holds its stdout; ending the response and stopping it"
	if run.h.KeepBackground {
		msg = "cgi: script exited but a background process holds its stdout; ending the response"
	}
	run.log.Warn().Str("script", run.s.Filename).Int("script_pid", run.cmd.Process.Pid).Ints("pids", holders).Msg(msg)
	run.stdout.end()
	run.stopLeftovers(holders)
}

// stopLeftovers stops the processes a script that has exited left running,
// unless KeepBackground: what is left of its process group, and holders
// (processes holding its stdout, perhaps outside the group). They get
// SIGTERM, and SIGKILL after KillGrace if they are still there.
func (run *scriptRun) stopLeftovers(holders []int) {
	if run.h.KeepBackground || run.stopping.Load() {
		return // stop's SIGKILL to the group follows the script's exit
	}
	pgid := run.cmd.Process.Pid
	// One system call tells whether anything is left: the common case.
	if len(holders) == 0 && syscall.Kill(-pgid, 0) != nil {
		return
	}
	run.leftOnce.Do(func() {
		if len(holders) == 0 {
			run.log.Warn().Str("script", run.s.Filename).Int("script_pid", pgid).Ints("pids", groupMembers(pgid)).
				Msg("cgi: script left background processes running; stopping them")
		}
		signal := func(sig syscall.Signal) (alive bool) {
			// Errors mean the process or group is gone.
			alive = syscall.Kill(-pgid, sig) == nil
			for _, pid := range holders {
				alive = syscall.Kill(pid, sig) == nil || alive
			}
			return alive
		}
		signal(syscall.SIGTERM)
		grace := defaults.Or(run.h.KillGrace, DefaultKillGrace)
		go func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			deadline := time.NewTimer(grace)
			defer deadline.Stop()
			for {
				select {
				case <-tick.C:
					if !signal(0) {
						return
					}
				case <-deadline.C:
					signal(syscall.SIGKILL)
					return
				}
			}
		}()
	})
}

// copyStdin copies the request body to the script's stdin. A body that
// fails to come (the client went, or stalled past the body timeout)
// stops the script before its stdin is closed: the script must not take
// the part that came for the whole body.
func (run *scriptRun) copyStdin(done chan<- struct{}, dst *os.File, src io.Reader) {
	defer close(done)
	defer dst.Close()
	rs := &readState{r: src}
	_, err := io.Copy(dst, rs)
	if rs.err != nil && !run.stdinEnded.Load() {
		run.stop("request body failed")
	}
	if err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, os.ErrClosed) {
		run.log.Debug().Err(err).Str("script", run.s.Filename).Msg("cgi: copying request body")
	}
}

// readState is a reader that keeps the error other than io.EOF its
// reader returned, telling a failed read from a failed write.
type readState struct {
	r   io.Reader
	err error
}

func (rs *readState) Read(p []byte) (int, error) {
	n, err := rs.r.Read(p)
	if err != nil && err != io.EOF {
		rs.err = err
	}
	return n, err
}

// endStdin stops feeding the script its request body, before the handler
// returns (the body must not be read after). A copy still running is stuck
// writing to a script that no longer reads (closing the pipe wakes it), or
// reading a body the client has not sent: a client that declared more than
// it sends would otherwise hold the request, and its script slot, for
// ever. The read is woken by a read deadline on the HTTP front, and by
// closing the body on the others (FastCGI, SCGI).
func (run *scriptRun) endStdin(stdinW *os.File, done <-chan struct{}) {
	if stdinW == nil {
		return
	}
	run.stdinEnded.Store(true) // the response is over: a read cut now stops nothing
	stdinW.Close()
	// A body still coming ends the copy by itself at its next write, to
	// the closed pipe: cutting the read instead would leave the rest of
	// the body where the server takes it for the next request.
	if closedWithin(done, stdinGrace) {
		return
	}
	if err := http.NewResponseController(run.w).SetReadDeadline(time.Now()); err != nil {
		_ = run.r.Body.Close() // what matters is that the read returns, below
	}
	t := time.NewTimer(bodyReadGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		run.log.Warn().Str("script", run.s.Filename).Msg("cgi: a read of the request body does not end; leaving it to the server")
	}
}

// logStderr logs the script's stderr line by line, within the handler's
// bounds, and keeps reading past them so the script never blocks.
func (run *scriptRun) logStderr(done chan<- struct{}, f *os.File) {
	defer close(done)
	lw := linelog.Writer{
		Event:    func() *zerolog.Event { return run.log.Warn().Str("script", run.s.Filename) },
		Msg:      "cgi: script stderr",
		MaxLine:  defaults.Or(run.h.MaxStderrLine, DefaultMaxStderrLine),
		MaxBytes: defaults.Or(run.h.MaxStderrBytes, DefaultMaxStderrBytes),
		DropMsg:  "cgi: stderr limit reached; dropping the rest",
	}
	lw.ReadFrom(f) // ends when the script and its children are gone, or f is closed
	lw.Flush()
}

// fail answers with status after an error on ferry's side.
func (run *scriptRun) fail(status int, err error, msg string) {
	run.log.Error().Err(err).Str("script", run.s.Filename).Msg(msg)
	ObserverFrom(run.r.Context()).Failed(status, err)
	http.Error(run.w, fmt.Sprintf("%d %s", status, http.StatusText(status)), status)
}
