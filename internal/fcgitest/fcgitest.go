package fcgitest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// ErrNoMultiplex marks an interleaved failure where the server refused the
// second request of a connection with END_REQUEST CANT_MPX_CONN (§ 5.5):
// it does not multiplex, which the protocol allows but ferry does not.
var ErrNoMultiplex = errors.New("fcgitest: server does not multiplex (CANT_MPX_CONN)")

const (
	// checkTimeout bounds one check in Run and Score. Each wait inside a
	// check is bounded on its own (at most 20 s); the longest sum, abort
	// against a server that answers slowly at every step, stays under it.
	// Against a server that ignores ABORT_REQUEST, abort takes about 11 s.
	checkTimeout = 60 * time.Second
	// preflightWait bounds the first request of Run and Score.
	preflightWait = 10 * time.Second
	dialTimeout   = 5 * time.Second
	// writeWait bounds one write of records.
	writeWait = 10 * time.Second
	// answerWait bounds the wait for the END_REQUEST of ordinary requests.
	answerWait = 10 * time.Second
	// closeWait bounds the wait for the server to close a connection.
	closeWait = 5 * time.Second
	// quietWait is how long a check listens for records that must not come.
	quietWait = 500 * time.Millisecond

	defaultMaxRSSGrowth = 20 << 20
)

// Target describes a FastCGI application server under test. Only Address is
// required.
//
// The application behind it must serve two endpoints, found by the request
// parameters REQUEST_URI, SCRIPT_NAME (PATH_INFO is empty) or SCRIPT_FILENAME
// (see Params): EchoPath answers "Content-Type: text/plain" and a body with
// the lines CONTENT_LENGTH=<n>, SHA256=<hex SHA-256 of the n bytes of STDIN>
// and QUERY_STRING=<query>; SleepPath writes its process ID and a newline to
// the file named by its query string (pid=<absolute path>) and sleeps 60 s.
// testdata/echo.sh and testdata/sleep.sh ([Scripts]) are these endpoints as
// CGI scripts.
type Target struct {
	// Network is "tcp" or "unix". If empty, "tcp" is used.
	Network string
	// Address is "127.0.0.1:9000" for tcp or a socket path for unix.
	Address string

	// EchoPath is the URL path of the echo endpoint. If empty, "/echo.sh" is used.
	EchoPath string
	// SleepPath is the URL path of the sleep endpoint. If empty, "/sleep.sh" is used.
	SleepPath string

	// Params returns parameters to add to, or override in, the request for
	// path and query (fcgiwrap needs SCRIPT_FILENAME, for instance). An empty
	// value is sent as an empty value. If nil, the suite sends only its own:
	// REQUEST_METHOD, REQUEST_URI, SCRIPT_NAME, PATH_INFO, QUERY_STRING,
	// CONTENT_LENGTH (and CONTENT_TYPE with a body), SERVER_PROTOCOL,
	// SERVER_NAME, SERVER_PORT, SERVER_SOFTWARE, REMOTE_ADDR,
	// GATEWAY_INTERFACE and HTTP_HOST.
	Params func(path, query string) map[string]string

	// PID is the server's process. If set, params-10mb measures the resident
	// memory (VmRSS) of PID and all its descendants before and after, and
	// lying-lengths checks that PID is still alive. If zero, both are
	// skipped (unless Memory is set).
	PID int
	// Memory, if set, replaces that measurement of PID in params-10mb: it
	// returns a byte count that grows with the memory the server uses. It
	// is meant for servers running in the test process, whose resident
	// memory depends on the garbage collector and on what the runtime kept
	// from earlier tests; runtime.MemStats.TotalAlloc, the bytes allocated
	// so far, is a deterministic upper bound of the growth there.
	Memory func() (int64, error)
	// MaxRSSGrowth is the bound on the growth of the memory measured by
	// params-10mb (VmRSS or Memory), in bytes. If zero, 20 MiB is used.
	MaxRSSGrowth int64

	// StateDir is where SleepPath writes its pid files: the suite and the
	// script (perhaps running as another user) must both be able to use it,
	// and its path may hold only ASCII letters, digits, '/', '.', '_' and
	// '-'. If empty, the abort check creates a world-writable temporary
	// directory.
	StateDir string
}

func (tg Target) network() string {
	if tg.Network == "" {
		return "tcp"
	}
	return tg.Network
}

func (tg Target) echoPath() string {
	if tg.EchoPath == "" {
		return "/echo.sh"
	}
	return tg.EchoPath
}

func (tg Target) sleepPath() string {
	if tg.SleepPath == "" {
		return "/sleep.sh"
	}
	return tg.SleepPath
}

// memory returns the function params-10mb measures the server's memory
// with, or nil if it is not to be measured.
func (tg Target) memory() func() (int64, error) {
	switch {
	case tg.Memory != nil:
		return tg.Memory
	case tg.PID != 0:
		return func() (int64, error) { return treeRSS(tg.PID) }
	}
	return nil
}

func (tg Target) maxRSSGrowth() int64 {
	if tg.MaxRSSGrowth > 0 {
		return tg.MaxRSSGrowth
	}
	return defaultMaxRSSGrowth
}

// A Check is one behaviour of the suite.
type Check struct {
	// Name is short and stable, e.g. "abort"; Run uses it as the subtest
	// name and Score as the map key.
	Name string
	// Run returns nil if the server behaves, or an error that starts with
	// Name and says what was wrong. Every check ends by sending a plain
	// request on a new connection, which must be answered: the server keeps
	// serving. Run returns when ctx is done at the latest.
	Run func(ctx context.Context, tg Target) error
}

// Checks returns the checks in their fixed order. Each call returns a new slice.
func Checks() []Check {
	checks := []struct {
		name string
		run  func(context.Context, Target) error
	}{
		{"responder", checkResponder},
		{"get-values", checkGetValues},
		{"unknown-type", checkUnknownType},
		{"stdin-300k", checkStdin300K},
		{"padding-255", checkPadding255},
		{"interleaved", checkInterleaved},
		{"keep-conn", checkKeepConn},
		{"abort", checkAbort},
		{"lying-lengths", checkLyingLengths},
		{"params-10mb", checkParams10MB},
	}
	out := make([]Check, len(checks))
	for i, c := range checks {
		out[i] = Check{Name: c.name, Run: func(ctx context.Context, tg Target) error {
			err := c.run(ctx, tg)
			if perr := probe(ctx, tg, c.name); perr != nil {
				err = errors.Join(err, fmt.Errorf("server stopped serving: %w", perr))
			}
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return nil
		}}
	}
	return out
}

// Run runs every check against tg as a subtest of t. It first sends one
// request and stops with t.Fatal if the server does not answer it within
// 10 s. A failing check reports its error with t.Error.
func Run(t *testing.T, tg Target) {
	t.Helper()
	if err := preflight(t.Context(), tg); err != nil {
		t.Fatal(err)
	}
	for _, c := range Checks() {
		t.Run(c.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), checkTimeout)
			defer cancel()
			if err := c.Run(ctx, tg); err != nil {
				t.Error(err)
			}
		})
	}
}

// Score runs every check against tg, in order, and returns the names of
// those that passed and failed, and the error of each failed one. If the
// server does not answer a first request within 10 s, all checks fail with
// that error.
func Score(ctx context.Context, tg Target) (passed, failed []string, errs map[string]error) {
	errs = make(map[string]error)
	if err := preflight(ctx, tg); err != nil {
		for _, c := range Checks() {
			failed = append(failed, c.Name)
			errs[c.Name] = fmt.Errorf("%s: %w", c.Name, err)
		}
		return nil, failed, errs
	}
	for _, c := range Checks() {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		err := c.Run(cctx, tg)
		cancel()
		if err != nil {
			failed = append(failed, c.Name)
			errs[c.Name] = err
			continue
		}
		passed = append(passed, c.Name)
	}
	return passed, failed, errs
}

// preflight sends one echo request and fails if it is not answered within
// preflightWait.
func preflight(ctx context.Context, tg Target) error {
	ctx, cancel := context.WithTimeout(ctx, preflightWait)
	defer cancel()
	if err := probe(ctx, tg, "preflight"); err != nil {
		return fmt.Errorf("fcgitest: server at %s %s not answering: %w", tg.network(), tg.Address, err)
	}
	return nil
}
