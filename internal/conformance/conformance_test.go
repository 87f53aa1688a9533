package conformance_test

import (
	"errors"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/internal/conformance"
	"github.com/ferrygw/ferry/internal/testlog"
)

// stdGateway serves the scripts of dir under /cgi-bin/ with Go's net/http/cgi:
// /cgi-bin/NAME[/path-info] runs dir/NAME. It is the smallest dispatcher that
// makes net/http/cgi a gateway for a whole directory, and adds nothing that
// net/http/cgi lacks.
type stdGateway struct {
	dir  string
	env  []string     // extra environment for every script
	log  *syncBuffer  // receives scripts' stderr and the handler's log
	root http.Handler // serves local redirects (RFC 3875 § 6.2.2)
}

func (g *stdGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/cgi-bin/")
	name, _, _ := strings.Cut(rest, "/")
	if !ok || name == "" || name == "." || name == ".." {
		http.NotFound(w, r)
		return
	}
	path := filepath.Join(g.dir, name)
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	h := &cgi.Handler{
		Path:                path,
		Root:                "/cgi-bin/" + name,
		Env:                 g.env,
		Stderr:              g.log,
		Logger:              log.New(g.log, "cgi: ", 0),
		PathLocationHandler: g.root,
	}
	h.ServeHTTP(w, r)
}

// syncBuffer is the shared concurrent log sink.
type syncBuffer = testlog.Buffer

// checkGoroutineLeaks fails t if, once t's other cleanups (registered later, so
// run earlier) are done, more goroutines run than when it was called.
func checkGoroutineLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines: %d after the test, %d before; stacks:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond) // no event to wait for: goroutines end on their own
		}
	})
}

// ciStrict reports whether missing prerequisites are failures.
func ciStrict() bool { return os.Getenv("CI") == "true" }

// newGitFixture builds the git fixture and installs the apps into cgiDir. It
// returns nil, after logging why, when git, gitweb or cgit is missing outside CI.
func newGitFixture(t *testing.T, cgiDir string) *conformance.GitFixture {
	t.Helper()
	fx, err := conformance.NewGitFixture(t.Context(), t.TempDir())
	if err == nil {
		err = conformance.InstallGitApps(cgiDir)
	}
	switch {
	case err == nil:
		return fx
	case errors.Is(err, conformance.ErrUnavailable) && !ciStrict():
		t.Logf("gitweb-cgit will be unavailable: %v", err)
		return nil
	default:
		t.Fatal(err)
		return nil
	}
}

// TestStdlibCGI runs the suite against net/http/cgi and checks that exactly the
// expected checks fail, so that a change to the suite that makes a check pass
// or fail by accident shows up here.
func TestStdlibCGI(t *testing.T) {
	if testing.Short() {
		t.Skip("measures Go's net/http/cgi, not ferry; go test ./... runs it")
	}
	checkGoroutineLeaks(t)
	cgiDir := t.TempDir()
	if err := conformance.CopyScripts(cgiDir); err != nil {
		t.Fatal(err)
	}
	fx := newGitFixture(t, cgiDir)
	gw := &stdGateway{dir: cgiDir, log: new(syncBuffer)}
	if fx != nil {
		gw.env = fx.Env
	}
	// ServeMux cleans paths: "/cgi-bin/../x" gets a 301 to "/x".
	mux := http.NewServeMux()
	mux.Handle("/cgi-bin/", gw)
	gw.root = mux
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	passed, failed, errs := conformance.Score(t.Context(), conformance.Target{
		BaseURL:   srv.URL,
		ScriptDir: cgiDir,
		Log:       gw.log.String,
		Git:       fx,
	})

	// What net/http/cgi lacks, by failing check:
	wantFailed := []string{
		// ServeHTTP answers 400 "Chunked request bodies are not supported by CGI."
		"post-chunked",
		// Output is copied with io.Copy into the ResponseWriter without Flush;
		// net/http holds the first 512 bytes (for sniffing) and then buffers,
		// so the first line stays in the server until the script ends.
		"streaming",
		// No NPH support: the status line "HTTP/1.1 202 Accepted" is skipped
		// as a bogus header line and the client gets 200.
		"nph",
		// It execs whatever file it is given; a file without exec bit gives
		// "permission denied" from exec and 500. (traversal passes: ServeMux
		// answers the dot-dot requests with 301, the dispatcher "env.sh%00.txt"
		// with 404, and the symlink to /etc/passwd gives the same harmless 500.)
		"noexec",
		// The request context is ignored: the child is killed only when a write
		// to the client fails, and sleep.sh writes nothing more.
		"disconnect",
	}
	// Without the apps and outside CI, the check is unavailable, not failed.
	if fx == nil && errors.Is(errs["gitweb-cgit"], conformance.ErrUnavailable) {
		wantFailed = append(wantFailed, "gitweb-cgit")
	}
	var wantPassed []string
	for _, c := range conformance.Checks() {
		if !slices.Contains(wantFailed, c.Name) {
			wantPassed = append(wantPassed, c.Name)
		}
	}
	for _, name := range failed {
		t.Logf("net/http/cgi fails %v", errs[name])
	}
	if !slices.Equal(passed, wantPassed) || !slices.Equal(failed, wantFailed) {
		for _, name := range failed {
			if !slices.Contains(wantFailed, name) {
				t.Errorf("unexpected failure: %v", errs[name])
			}
		}
		t.Errorf("net/http/cgi passed %q; want %q", passed, wantPassed)
	}
	if t.Failed() {
		t.Logf("gateway log:\n%s", gw.log.String())
	}
}

// TestChecksCanFail runs the suite against a server that answers every request
// with 200 and "hello": no check may pass.
func TestChecksCanFail(t *testing.T) {
	checkGoroutineLeaks(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("hello\n")) // nothing to do about a client gone
	}))
	t.Cleanup(srv.Close)
	fake := &conformance.GitFixture{
		Project:     "conformance.git",
		Repo:        "conformance",
		Description: "ferry conformance fixture repository",
		Commits: []conformance.GitCommit{
			{ID: strings.Repeat("1", 40), Subject: "first"},
			{ID: strings.Repeat("2", 40), Subject: "second"},
		},
	}
	passed, failed, errs := conformance.Score(t.Context(), conformance.Target{
		BaseURL:   srv.URL,
		ScriptDir: t.TempDir(),
		Log:       func() string { return "" },
		Git:       fake,
	})
	if len(passed) != 0 {
		t.Errorf("checks passed against a server that only says hello: %q", passed)
	}
	if len(failed) != len(conformance.Checks()) {
		t.Errorf("%d checks failed; want all %d", len(failed), len(conformance.Checks()))
	}
	for _, name := range failed {
		err := errs[name]
		if errors.Is(err, conformance.ErrUnavailable) {
			t.Errorf("%s: unavailable instead of failed: %v", name, err)
		}
		if !strings.HasPrefix(err.Error(), name+": ") {
			t.Errorf("error %q does not start with %q", err, name+": ")
		}
	}
}

// TestCopyScripts checks that the copy keeps each script's permission bits, in
// particular that noexec.sh stays not executable.
func TestCopyScripts(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "cgi-bin")
	if err := conformance.CopyScripts(dst); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		perm os.FileMode
	}{
		{"env.sh", 0o755},
		{"env.pl", 0o755},
		{"env.py", 0o755},
		{"echo.py", 0o755},
		{"sleep.sh", 0o755},
		{"nph-hello.sh", 0o755},
		{"noexec.sh", 0o644},
	} {
		fi, err := os.Stat(filepath.Join(dst, tt.name))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if got := fi.Mode().Perm(); got != tt.perm {
			t.Errorf("%s: mode %v; want %v", tt.name, got, tt.perm)
		}
	}
}

// TestScoreGatewayDown checks that a gateway that cannot be reached fails every
// check at once, with the reason.
func TestScoreGatewayDown(t *testing.T) {
	checkGoroutineLeaks(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens on srv.URL any more
	start := time.Now()
	passed, failed, errs := conformance.Score(t.Context(), conformance.Target{BaseURL: srv.URL})
	if len(passed) != 0 || len(failed) != len(conformance.Checks()) {
		t.Errorf("Score against a closed port: passed %q, failed %q; want all failed", passed, failed)
	}
	if err := errs["env"]; err == nil || !strings.Contains(err.Error(), "gateway not answering") {
		t.Errorf(`errs["env"] = %v; want "gateway not answering"`, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Score took %v against a closed port; want it to give up at once", d)
	}
}
