package conformance

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// ErrUnavailable marks a check that could not run because something outside the
// gateway is missing: a binary (git, gitweb, cgit), a fixture ([Target.Git] is
// nil) or a base URL scheme a check cannot dial. [Run] turns it into a skip unless
// the environment variable CI is "true", where everything must be installed.
var ErrUnavailable = errors.New("conformance: prerequisite unavailable")

// checkTimeout bounds one check in [Run] and [Score]. The slowest passing check
// (output-20mib or parallel) takes about two seconds; failing ones wait at most
// for their own shorter limits (streamWait, startWait plus reapWait).
const checkTimeout = 20 * time.Second

// preflightWait bounds the first request of [Run] and [Score]. If it gets no
// answer, the gateway is down or hangs, and all checks fail at once instead of
// each waiting for checkTimeout.
const preflightWait = 10 * time.Second

// Target describes a gateway under test. Only BaseURL is required.
type Target struct {
	// BaseURL is the gateway's scheme and authority, e.g. "http://127.0.0.1:8080",
	// without a path. The head check needs the http scheme.
	BaseURL string

	// Prefix is the URL path under which the scripts are served. If empty,
	// "/cgi-bin/" is used. A missing leading or trailing slash is added.
	Prefix string

	// StateDir is a directory the scripts (perhaps running as another user, such
	// as www-data) can write pid and marker files into, and the suite can read
	// and create files in. If empty, Run and Score create a world-writable
	// temporary directory and remove it when done.
	StateDir string

	// ScriptDir is the directory the gateway serves under Prefix, as seen by the
	// suite. If set, the traversal check creates (and removes) symlinks in it
	// that point outside; if empty, those cases are left out.
	ScriptDir string

	// Log returns everything the gateway has logged so far. If nil, the stderr
	// check only asserts the response, not that the script's stderr was logged.
	Log func() string

	// Client sends the requests. If nil, a client with its own transport is used
	// (no proxy, no compression). Redirects are never followed either way.
	Client *http.Client

	// Git is the repository the gitweb-cgit check expects the gateway to show;
	// the gateway must run gitweb.cgi and cgit.cgi with Git.Env. If nil, that
	// check returns an error wrapping ErrUnavailable.
	Git *GitFixture
}

// A Check is one conformance behaviour.
type Check struct {
	// Name is short and stable, e.g. "env" or "post-1mib"; Run uses it as the
	// subtest name and Score as the map key.
	Name string

	// Run returns nil if the gateway behaves, or an error that starts with Name
	// and says what was wrong. It returns when ctx is done at the latest. It
	// takes tg as given: called directly rather than through the package's Run
	// or Score, tg.StateDir must be set for the streaming and disconnect checks.
	Run func(ctx context.Context, tg Target) error
}

// Checks returns the checks in their fixed order. Each call returns a new slice.
func Checks() []Check {
	checks := []struct {
		name string
		run  func(context.Context, *session) error
	}{
		{"env", checkEnv},
		{"post-1mib", checkPost1MiB},
		{"post-chunked", checkPostChunked},
		{"status", checkStatus},
		{"cookies", checkCookies},
		{"redirect", checkRedirect},
		{"output-20mib", checkOutput20MiB},
		{"streaming", checkStreaming},
		{"stderr", checkStderr},
		{"crash", checkCrash},
		{"nph", checkNPH},
		{"noexec", checkNoexec},
		{"traversal", checkTraversal},
		{"missing", checkMissing},
		{"head", checkHead},
		{"disconnect", checkDisconnect},
		{"parallel", checkParallel},
		{"gitweb-cgit", checkGit},
	}
	out := make([]Check, len(checks))
	for i, c := range checks {
		out[i] = Check{Name: c.name, Run: func(ctx context.Context, tg Target) error {
			s, err := newSession(tg)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			defer s.close()
			if err := c.run(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return nil
		}}
	}
	return out
}

// Run runs every check against tg as a subtest of t. It first sends one request
// and stops with t.Fatal if the gateway does not answer within 10 s. A failing
// check reports its error with t.Error; one that returns [ErrUnavailable] is
// skipped, except under CI=true where it fails too.
func Run(t *testing.T, tg Target) {
	t.Helper()
	tg, cleanup, err := prepare(tg)
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	t.Cleanup(cleanup)
	if err := preflight(t.Context(), tg); err != nil {
		t.Fatal(err)
	}
	strict := os.Getenv("CI") == "true"
	for _, c := range Checks() {
		t.Run(c.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), checkTimeout)
			defer cancel()
			err := c.Run(ctx, tg)
			switch {
			case err == nil:
			case errors.Is(err, ErrUnavailable) && !strict:
				t.Skip(err)
			default:
				t.Error(err)
			}
		})
	}
}

// Score runs every check against tg, in order, and returns the names of those
// that passed and failed, and the error of each failed one. Checks that return
// [ErrUnavailable] count as failed; errors.Is tells them apart. If the gateway
// does not answer a first request within 10 s, all checks fail with that error.
func Score(ctx context.Context, tg Target) (passed, failed []string, errs map[string]error) {
	errs = make(map[string]error)
	tg, cleanup, err := prepare(tg)
	if err == nil {
		defer cleanup()
		err = preflight(ctx, tg)
	}
	if err != nil {
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

// prepare fills in the client and state directory that Run and Score share
// between checks, and returns a function that releases them.
func prepare(tg Target) (Target, func(), error) {
	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if tg.Client == nil {
		tr := newTransport()
		tg.Client = &http.Client{Transport: tr}
		cleanups = append(cleanups, tr.CloseIdleConnections)
	}
	if tg.StateDir == "" {
		dir, err := newStateDir()
		if err != nil {
			cleanup()
			return tg, nil, err
		}
		tg.StateDir = dir
		cleanups = append(cleanups, func() {
			// Best effort: a script running as another user may have left a
			// file we cannot remove, which must not fail the run.
			_ = os.RemoveAll(dir)
		})
	}
	return tg, cleanup, nil
}

// preflight sends one GET of env.sh and fails if no response (of any status)
// arrives within preflightWait, or if tg's base URL is unusable.
func preflight(ctx context.Context, tg Target) error {
	ctx, cancel := context.WithTimeout(ctx, preflightWait)
	defer cancel()
	s, err := newSession(tg)
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := s.get(ctx, s.script("env.sh")); err != nil {
		return fmt.Errorf("conformance: gateway not answering: %w", err)
	}
	return nil
}

// newStateDir creates a world-writable directory for script state. It is made
// with os.MkdirTemp rather than t.TempDir because a test's temporary directory
// sits in a parent only its owner may enter, and the scripts may run as another
// user (Apache's www-data).
func newStateDir() (string, error) {
	dir, err := os.MkdirTemp("", "ferry-conformance-")
	if err != nil {
		return "", fmt.Errorf("conformance: state dir: %w", err)
	}
	// Chmod is not subject to the umask, unlike MkdirTemp's mode.
	if err := os.Chmod(dir, 0o777); err != nil {
		_ = os.RemoveAll(dir) // the chmod error is the one to report
		return "", fmt.Errorf("conformance: state dir: %w", err)
	}
	return dir, nil
}

// prefix returns tg.Prefix with its default applied, starting and ending in "/".
func (tg Target) prefix() string {
	p := tg.Prefix
	if p == "" {
		return "/cgi-bin/"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}
