package fcgitest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/leakcheck"
	"github.com/ferrygw/ferry/internal/peers"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
)

func scriptsDir(t *testing.T) string {
	t.Helper()
	dir, err := Scripts()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// startRefTarget starts a reference server (ref_test.go) with the given
// fault on a loopback port, stopped when the test ends.
func startRefTarget(t *testing.T, fault string) Target {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := startRef(ctx, l, scriptsDir(t), fault)
	t.Cleanup(func() { cancel(); wait() })
	return Target{Address: l.Addr().String()}
}

// allocated is Target.Memory for servers in the test process: the bytes
// allocated so far. The process's RSS is no measure there: after a garbage
// collection the runtime reuses memory earlier tests left resident, so a
// server that buffers 10 MiB may not grow it at all (and under -race the
// shadow memory stays resident even after debug.FreeOSMemory).
func allocated() (int64, error) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.TotalAlloc), nil
}

// TestReference shows that every check can pass: the reference server does
// what the package documentation asks, memory included. It must run alone:
// allocations of concurrent tests would count as the server's.
func TestReference(t *testing.T) {
	leakcheck.Check(t)
	tg := startRefTarget(t, "")
	tg.PID, tg.Memory = os.Getpid(), allocated
	Run(t, tg)
}

// TestChecksCanFail runs each check against a reference server with the
// matching fault and wants it to fail.
func TestChecksCanFail(t *testing.T) {
	leakcheck.Check(t)
	for _, c := range Checks() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			tg := startRefTarget(t, c.Name)
			// Concurrent subtests add to the count, but only params-10mb
			// measures, and it must fail anyway.
			tg.PID, tg.Memory = os.Getpid(), allocated
			ctx, cancel := context.WithTimeout(t.Context(), checkTimeout)
			defer cancel()
			err := c.Run(ctx, tg)
			if err == nil {
				t.Fatalf("%s passed against a server with that fault; want an error", c.Name)
			}
			t.Logf("fails as it should: %v", err)
			if !strings.HasPrefix(err.Error(), c.Name+": ") {
				t.Errorf("error %q does not start with %q", err, c.Name+": ")
			}
			if c.Name == "interleaved" && !errors.Is(err, ErrNoMultiplex) {
				t.Errorf("interleaved error %v does not wrap ErrNoMultiplex", err)
			}
		})
	}
}

// expectFailures scores tg and wants exactly the checks of want to fail,
// each with an error that mentions the given text (or wraps ErrNoMultiplex
// when the text is "ErrNoMultiplex").
func expectFailures(t *testing.T, tg Target, want map[string]string) {
	t.Helper()
	passed, failed, errs := Score(t.Context(), tg)
	t.Logf("passed %d of %d: %q", len(passed), len(passed)+len(failed), passed)
	var wantFailed []string
	for _, c := range Checks() {
		if _, ok := want[c.Name]; ok {
			wantFailed = append(wantFailed, c.Name)
		}
	}
	if !slices.Equal(failed, wantFailed) {
		t.Errorf("failed %q; want %q", failed, wantFailed)
	}
	for _, name := range failed {
		err := errs[name]
		text, ok := want[name]
		switch {
		case !ok:
			t.Errorf("unexpected failure: %v", err)
		case text == "ErrNoMultiplex" && errors.Is(err, ErrNoMultiplex),
			text != "ErrNoMultiplex" && strings.Contains(err.Error(), text):
			t.Logf("fails as expected: %v", err)
		default:
			t.Errorf("%s fails for another reason than expected (%q): %v", name, text, err)
		}
	}
}

// stdApp is the application behind net/http/fcgi: the echo endpoint in Go,
// the sleep endpoint as testdata/sleep.sh run under the request's context.
type stdApp struct {
	sleepScript string
	// stopped ends the scripts still running when the test ends, since
	// net/http/fcgi never cancels a request's context.
	stopped context.Context
}

func (a *stdApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/echo":
		// Like echo.sh: read CONTENT_LENGTH bytes, no more.
		h := sha256.New()
		if _, err := io.Copy(h, io.LimitReader(r.Body, r.ContentLength)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "CONTENT_LENGTH=%d\nSHA256=%x\nQUERY_STRING=%s\n", r.ContentLength, h.Sum(nil), r.URL.RawQuery)
	case "/sleep":
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		defer context.AfterFunc(a.stopped, cancel)()
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "sleeping")
		w.(http.Flusher).Flush()
		cmd := exec.CommandContext(ctx, a.sleepScript)
		cmd.Env = append(os.Environ(), "QUERY_STRING="+r.URL.RawQuery)
		// The script's own CGI output goes to /dev/null. It ends killed,
		// so the error says nothing new.
		_ = cmd.Run()
	default:
		http.NotFound(w, r)
	}
}

// TestPeers scores the two application servers ferry is compared with. They
// run in parallel; neither measures memory the other allocates much of.
func TestPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("measures peers (net/http/fcgi, fcgiwrap), not ferry; go test ./... runs it")
	}
	leakcheck.Check(t)
	t.Run("net-http-fcgi", func(t *testing.T) {
		t.Parallel()
		testNetHTTPFCGI(t)
	})
	t.Run("fcgiwrap", func(t *testing.T) {
		t.Parallel()
		testFcgiwrap(t)
	})
}

// testNetHTTPFCGI scores Go's net/http/fcgi, in process.
func testNetHTTPFCGI(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stopped, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	app := &stdApp{sleepScript: filepath.Join(scriptsDir(t), "sleep.sh"), stopped: stopped}
	go func() { served <- fcgi.Serve(l, app) }()
	t.Cleanup(func() {
		stop()
		l.Close()
		<-served
	})
	// fcgiwrap's subtest, running in parallel, allocates in this process
	// too, but little, and params-10mb fails here by far anyway.
	tg := Target{Address: l.Addr().String(), EchoPath: "/echo", SleepPath: "/sleep", PID: os.Getpid(), Memory: allocated}
	expectFailures(t, tg, map[string]string{
		// writePairs (fcgi.go) sends the pairs through a stream writer
		// whose Close adds an empty GET_VALUES_RESULT record: two answers
		// to one query. It also answers FCGI_MPXS_CONNS=1 whatever was asked.
		"get-values": "unexpected GET_VALUES_RESULT id=0 len=0 after GET_VALUES_RESULT",
		// child.handleRecord drops every record whose request ID is not
		// in flight, except BEGIN_REQUEST and GET_VALUES, before its
		// switch: management records (ID 0) of other types never reach
		// the default case that writes UNKNOWN_TYPE.
		"unknown-type": "no UNKNOWN_TYPE for a management record of type 100",
		// Once STDIN has ended, the request is deleted from c.requests, so
		// ABORT_REQUEST is dropped as an unknown ID: no END_REQUEST. The
		// request's context is never canceled either, so the script
		// sleeps on (the suite kills it).
		"abort": "no END_REQUEST within 10s of ABORT_REQUEST",
		// child.go appends PARAMS content to rawParams with no cap, then
		// copies it into strings: about 40 MiB allocated for 10 MiB of
		// params, most of it live at once.
		"params-10mb": "server memory grew by",
	})
}

// testFcgiwrap scores fcgiwrap (with libfcgi 2.4) on a unix socket.
func testFcgiwrap(t *testing.T) {
	bin := peerstest.Need(t, "fcgiwrap")["fcgiwrap"]
	dir := scriptsDir(t)
	tmp := t.TempDir()
	sock := filepath.Join(tmp, "fcgiwrap.sock")
	p, err := peers.Start(t.Context(), peers.Spec{
		Path: bin,
		// Two workers: one may be busy with a script the abort check
		// left running while the other answers.
		Args:      []string{"-c", "2", "-s", "unix:" + sock},
		LogFile:   filepath.Join(tmp, "fcgiwrap.log"),
		ReadyUnix: sock,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Error(err)
		}
	})
	tg := Target{
		Network: "unix", Address: sock, PID: p.Pid(),
		// fcgiwrap runs the file named by SCRIPT_FILENAME.
		Params: func(path, _ string) map[string]string {
			return map[string]string{"SCRIPT_FILENAME": filepath.Join(dir, filepath.Base(path))}
		},
	}
	expectFailures(t, tg, map[string]string{
		// libfcgi's FillBuffProc reads from the socket before it notices
		// the end of the record it is in, so reading the GET_VALUES query
		// blocks until more bytes follow: a lone GET_VALUES, the last
		// thing on the wire, is never answered.
		"get-values": "no GET_VALUES_RESULT",
		// libfcgi answers UNKNOWN_TYPE but does not skip the record's
		// 8-byte body, which it then takes for request data while no
		// request has begun, and it closes the connection.
		"unknown-type": "connection unusable after UNKNOWN_TYPE",
		// libfcgi returns from the BEGIN_REQUEST record without skipping
		// its padding; the 255 zero bytes are read as record headers, the
		// PARAMS are lost and fcgiwrap, with no SCRIPT_FILENAME, answers
		// 403. (nginx never pads BEGIN_REQUEST, whose body is 8 bytes.)
		"padding-255": "status 403",
		// libfcgi serves one request per connection at a time and answers
		// a second BEGIN_REQUEST with END_REQUEST CANT_MPX_CONN.
		"interleaved": "ErrNoMultiplex",
		// fcgiwrap reads all of STDIN before the script's output and then
		// never reads the connection again until the script ends: it never
		// sees ABORT_REQUEST, and the script sleeps on (the suite kills it).
		"abort": "no END_REQUEST within 10s of ABORT_REQUEST",
	})
}
