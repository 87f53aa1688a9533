package appserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/peers/peerstest"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/ferrygw/ferry/scgi"
	"github.com/ferrygw/ferry/spawn"
	"github.com/rs/zerolog"
)

// served is an application running in Workers behind an HTTP test server,
// mounted at /app/ as a wsgi: or psgi: mount is.
type served struct {
	w     *Workers
	url   string // the test server's, with the /app prefix
	logs  *testlog.Buffer
	state string // a directory the application writes marks in
}

// serve starts app in workers (two unless set changes it) and an HTTP test
// server in front of them; both stop at cleanup.
func serve(t *testing.T, app App, set func(*Workers)) *served {
	t.Helper()
	logs := &testlog.Buffer{}
	lg := zerolog.New(logs)
	state := t.TempDir()
	w := &Workers{
		App:  app,
		Pool: &spawn.Pool{Workers: 2, Env: []string{"TEST_STATE=" + state}, KillGrace: 2 * time.Second, RestartBackoff: 50 * time.Millisecond, Logger: &lg},
	}
	if set != nil {
		set(w)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatalf("starting the workers: %v\n%s", err, logs)
	}
	t.Cleanup(func() {
		if err := w.Stop(context.Background()); err != nil {
			t.Errorf("stopping the workers: %v", err)
		}
	})
	c := &scgi.Client{Network: "unix", Address: w.Address(), MaxConns: w.Pool.Size(), Logger: &lg}
	hs := httptest.NewServer(w.Handler(scgi.NewHandler(c, cgi.Mount{Prefix: "/app/"}, cgi.Settings{Logger: &lg})))
	t.Cleanup(hs.Close)
	return &served{w: w, url: hs.URL + "/app", logs: logs, state: state}
}

// wsgi serves the test application testdata/pep3333.py.
func wsgi(t *testing.T, set func(*Workers)) *served {
	t.Helper()
	return serve(t, &WSGI{Python: peerstest.Need(t, "python3")["python3"], File: testdata(t, "pep3333.py")}, set)
}

// psgi serves the test application testdata/app.psgi.
func psgi(t *testing.T, set func(*Workers)) *served {
	t.Helper()
	return serve(t, &PSGI{Perl: peerstest.Need(t, "perl")["perl"], File: testdata(t, "app.psgi")}, set)
}

// testdata returns the absolute path of a file in testdata.
func testdata(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// getStatus sends a GET in the background; the channel gets its status,
// or 0 if it failed.
func getStatus(url string) <-chan int {
	c := make(chan int, 1)
	go func() {
		code := 0
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			code = resp.StatusCode
		}
		c <- code
	}()
	return c
}

// readCut reads a whole response and reports whether it was cut short
// rather than ended: an error reading its body or, when the application's
// end came with its first bytes and none had reached the connection yet
// (the SCGI client sees the end before the copy flushes), the connection
// closed before any response. It sends the request on a new connection,
// so that such an end cannot be a kept connection closed before the
// request reached the server. An error that is no such cut fails t.
func readCut(t *testing.T, url string) (string, bool) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return "", true
		}
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err != nil
}

// do sends a request and returns the status, the body and the header.
func do(t *testing.T, method, url string, body io.Reader, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFile waits for a file and returns its content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	var b []byte
	waitFor(t, "file "+path, func() bool {
		var err error
		b, err = os.ReadFile(path)
		return err == nil && len(b) > 0
	})
	return string(b)
}

// replaced waits until the pool runs as many workers as before, none of
// them old.
func replaced(t *testing.T, w *Workers, old int, n int) {
	t.Helper()
	waitFor(t, "worker replaced", func() bool {
		pids := w.PIDs()
		return len(pids) == n && !slices.Contains(pids, old)
	})
}

// lines returns the log lines holding every one of subs, for messages.
func lines(logs *testlog.Buffer, subs ...string) string {
	return strings.Join(logs.Lines(subs...), "\n")
}

// ignoredBodies posts bodies the application at path does not read, which
// it answers with two streamed blocks, "first second", and fails t for
// each response cut short. A worker that closed its connection with the
// body unread in its socket made ferry's next read fail (a unix socket
// closed with unread data resets its peer), and ferry cut the response,
// whole as it was, in about one request in five.
func ignoredBodies(t *testing.T, s *served, path string) {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	cuts := 0
	for i := range 40 {
		body := strings.Repeat("x", 10)
		if i%2 == 1 {
			body = strings.Repeat("x", 64<<10)
		}
		resp, err := client.Post(s.url+path, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(b) != "first second" {
			cuts++
			t.Logf("POST %s with %d bytes: %d %q, %v", path, len(body), resp.StatusCode, b, err)
		}
	}
	if cuts > 0 {
		t.Errorf("%d of 40 responses to requests whose body the application did not read were cut short\n%s", cuts, lines(s.logs, "cut short"))
	}
}
