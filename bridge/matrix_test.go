package bridge

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/testdir"
	"github.com/ferrygw/ferry/internal/testlog"
	"github.com/ferrygw/ferry/scgi"
	"github.com/rs/zerolog"
)

// The front x back matrix: every way a request can reach ferry (HTTP, HTTPS
// over HTTP/2, a web server speaking FastCGI or SCGI to it, a web server
// running it as a CGI program) against every kind of application it can
// reach (a cgi-bin, FastCGI over TCP, FastCGI workers it spawns, SCGI,
// HTTP): twenty-five pairs.
// Each pair must pass the same core checks.
//
// The web servers in front are ferry's own FastCGI and SCGI clients and CGI
// runner on a TLS listener (so HTTPS=on and their port must reach the
// application unchanged through ferry); the real nginx, Apache and lighttpd
// are exercised by the interop tests in cmd/ferry.
//
// ferry here is a bridge Server run in this process for the HTTP, FastCGI
// and SCGI fronts, and this test binary run as a CGI program (TestMain,
// FERRY_TEST_CGI_FRONT) for the CGI front; the worker of the fastcgi+exec
// back is this test binary too (FERRY_TEST_MATRIX_WORKER).

const (
	matrixPrefix  = "/app/matrix.sh" // the mount, and the CGI script's SCRIPT_NAME
	matrixBigSize = 20 << 20
)

// matrixScript is the CGI form of the matrix application.
const matrixScript = `#!/bin/sh
case "$PATH_INFO" in
/env*) printf 'Content-Type: text/plain\n\n'
	printf 'script_name=%s\npath_info=%s\nquery=%s\nremote_addr=%s\nserver_port=%s\nhttps=%s\n' \
		"$SCRIPT_NAME" "$PATH_INFO" "$QUERY_STRING" "$REMOTE_ADDR" "$SERVER_PORT" "$HTTPS" ;;
/post) printf 'Content-Type: text/plain\n\n'; head -c "$CONTENT_LENGTH" | sha256sum | cut -d' ' -f1 ;;
/status) printf 'Status: 201 Created\nContent-Type: text/plain\n\ncreated' ;;
/cookies) printf 'Set-Cookie: a=1\nSet-Cookie: b=2\nContent-Type: text/plain\n\ncookies' ;;
/stream) printf 'Content-Type: text/plain\n\nfirst\n'
	m="${QUERY_STRING#mark=}"; i=0
	while [ ! -e "$m" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done
	printf 'second\n' ;;
/big) printf 'Content-Type: application/octet-stream\n\n'; head -c 20971520 /dev/zero ;;
*) printf 'Status: 404 Not Found\nContent-Type: text/plain\n\nno such check' ;;
esac
`

// matrixBadScript writes output that is not a CGI response: 502.
const matrixBadScript = "#!/bin/sh\necho 'this is not a header block'\n"

// matrixApp is the Go form of the matrix application, served over FastCGI,
// SCGI and HTTP. Behind FastCGI and SCGI it reports the meta-variables it
// got (cgi.Origin); behind HTTP, what the X-Forwarded-* headers say.
func matrixApp() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		check, _ := strings.CutPrefix(r.URL.Path, matrixPrefix)
		switch {
		case strings.HasPrefix(check, "/env"):
			vars := cgi.Origin(r.Context())
			if vars == nil { // behind HTTP
				prefix := r.Header.Get("X-Forwarded-Prefix")
				xff := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
				https := ""
				if r.Header.Get("X-Forwarded-Proto") == "https" {
					https = "on"
				}
				vars = map[string]string{"SCRIPT_NAME": prefix, "PATH_INFO": strings.TrimPrefix(r.URL.Path, prefix),
					"QUERY_STRING": r.URL.RawQuery, "REMOTE_ADDR": strings.TrimSpace(xff[0]),
					"SERVER_PORT": r.Header.Get("X-Forwarded-Port"), "HTTPS": https}
			}
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprintf(w, "script_name=%s\npath_info=%s\nquery=%s\nremote_addr=%s\nserver_port=%s\nhttps=%s\n",
				vars["SCRIPT_NAME"], vars["PATH_INFO"], vars["QUERY_STRING"], vars["REMOTE_ADDR"], vars["SERVER_PORT"], vars["HTTPS"])
		case check == "/post":
			h := sha256.New()
			io.Copy(h, r.Body)
			fmt.Fprintf(w, "%x\n", h.Sum(nil))
		case check == "/pid":
			fmt.Fprint(w, os.Getpid())
		case check == "/status":
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, "created")
		case check == "/cookies":
			w.Header().Add("Set-Cookie", "a=1")
			w.Header().Add("Set-Cookie", "b=2")
			io.WriteString(w, "cookies")
		case check == "/stream":
			io.WriteString(w, "first\n")
			w.(http.Flusher).Flush()
			mark := r.URL.Query().Get("mark")
			for i := 0; i < 400; i++ {
				if _, err := os.Stat(mark); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			io.WriteString(w, "second\n")
		case check == "/big":
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(make([]byte, matrixBigSize))
		case check == "/crash":
			if os.Getenv("FERRY_TEST_MATRIX_WORKER") == "1" {
				os.Exit(3) // a worker dying mid-request: 502
			}
			http.Error(w, "no crash here", http.StatusInternalServerError)
		default:
			http.NotFound(w, r)
		}
	})
}

// matrixWorkerMain is the matrix application as a FastCGI worker spawned by
// ferry (fastcgi+exec:), on the socket at descriptor 0.
func matrixWorkerMain() int {
	if err := fastcgi.Serve(nil, matrixApp()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// matrixBack is one kind of application: the mount for the working app,
// and one for a broken one (502).
type matrixBack struct {
	name    string
	mount   func(t *testing.T) (good, bad string)
	badPath string // the request that meets the broken application
}

// deadAddr returns a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func matrixBacks() []matrixBack {
	return []matrixBack{
		{name: "cgi", badPath: "/bad/bad.sh", mount: func(t *testing.T) (string, string) {
			dir := testdir.Open(t)
			writeExec(t, filepath.Join(dir, "matrix.sh"), matrixScript)
			writeExec(t, filepath.Join(dir, "bad.sh"), matrixBadScript)
			return "/app/=cgi:" + dir, "/bad/=cgi:" + dir
		}},
		{name: "fastcgi", badPath: "/bad/x", mount: func(t *testing.T) (string, string) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &fastcgi.Server{Handler: matrixApp()}
			go srv.Serve(l)
			t.Cleanup(func() { srv.Close() })
			return matrixPrefix + "/=fastcgi://" + l.Addr().String(), "/bad/=fastcgi://" + deadAddr(t)
		}},
		{name: "fastcgi+exec", badPath: matrixPrefix + "/crash", mount: func(t *testing.T) (string, string) {
			// The worker is this test binary; Settings.Env marks it a worker.
			return matrixPrefix + "/=fastcgi+exec:" + testdir.Executable(t) + "?workers=2", ""
		}},
		{name: "scgi", badPath: "/bad/x", mount: func(t *testing.T) (string, string) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := &scgi.Server{Handler: matrixApp()}
			go srv.Serve(l)
			t.Cleanup(func() { srv.Close() })
			return matrixPrefix + "/=scgi://" + l.Addr().String(), "/bad/=scgi://" + deadAddr(t)
		}},
		{name: "http", badPath: "/bad/x", mount: func(t *testing.T) (string, string) {
			app := httptest.NewServer(matrixApp())
			t.Cleanup(app.Close)
			return matrixPrefix + "/=" + app.URL, "/bad/=http://" + deadAddr(t)
		}},
	}
}

// matrixFront is one way in: it starts ferry with the given arguments and
// returns the base URL a client uses, and that client.
type matrixFront struct {
	name  string
	https bool // the application must see HTTPS=on
	start func(t *testing.T, mounts []string) (base string, client *http.Client, port string)
}

// TestMain makes this test binary the CGI front's ferry or the fastcgi+exec
// worker when the matrix runs it as one, or the ferry or the flooder of
// the flood tests.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("FERRY_TEST_CGI_FRONT") == "1":
		os.Exit(cgiFrontMain(os.Args[1:]))
	case os.Getenv("FERRY_TEST_MATRIX_WORKER") == "1":
		os.Exit(matrixWorkerMain())
	case os.Getenv(floodFerryEnv) != "":
		os.Exit(floodFerryMain(os.Getenv(floodFerryEnv)))
	case os.Getenv(flooderEnv) == "1":
		os.Exit(flooderMain())
	}
	os.Exit(m.Run())
}

// matrixConfig is the configuration of a ferry of the matrix: its mounts
// ("PREFIX=BACKEND") and the environment its workers get.
func matrixConfig(listen string, mounts []string) (Config, error) {
	cfg := Config{Settings: Settings{Env: []string{"FERRY_TEST_MATRIX_WORKER=1"}, MaxConcurrent: 16}}
	a, err := ParseAddress(listen)
	if err != nil {
		return Config{}, err
	}
	cfg.Listen = []Address{a}
	for _, s := range mounts {
		m, err := ParseMount(s)
		if err != nil {
			return Config{}, err
		}
		cfg.Mounts = append(cfg.Mounts, m)
	}
	return cfg, nil
}

// cgiFrontMain serves the one CGI request of this process through mounts.
func cgiFrontMain(mounts []string) int {
	cfg, err := matrixConfig("cgi:", mounts)
	if err == nil {
		var s *Server
		if s, err = New(cfg); err == nil {
			err = s.Run(context.Background(), nil)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startMatrixFerry runs a bridge Server listening on listen with mounts, and
// returns the address it listens on. It shuts down at cleanup (stopping its
// workers), showing its log if the pair failed.
func startMatrixFerry(t *testing.T, listen string, mounts []string) string {
	cfg, err := matrixConfig(listen, mounts)
	if err != nil {
		t.Fatal(err)
	}
	_, a, _ := runFerry(t, cfg)
	return a
}

// runFerry runs a Server of cfg, logging to the buffer it returns unless
// cfg has a Logger, and returns it and the address of its first front. It stops
// at cleanup (stopping its workers), showing its log if the test failed.
func runFerry(t *testing.T, cfg Config) (*Server, string, *testlog.Buffer) {
	t.Helper()
	s, addrs, logs := runFerryFronts(t, cfg)
	return s, addrs[0], logs
}

// runFerryFronts is runFerry returning the addresses of every front, in
// the order of cfg.Listen.
func runFerryFronts(t testing.TB, cfg Config) (*Server, []string, *testlog.Buffer) {
	t.Helper()
	logs := &testlog.Buffer{}
	if cfg.Logger == nil {
		log := zerolog.New(logs)
		cfg.Logger = &log
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan []string, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(ls []net.Listener) {
			as := make([]string, len(ls))
			for i, l := range ls {
				as[i] = l.Addr().String()
			}
			addrs <- as
		})
		close(addrs)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ferry stopped with %v", err)
		}
		if t.Failed() {
			t.Logf("ferry's log:\n%s", logs)
		}
	})
	as, ok := <-addrs
	if !ok {
		err := <-done
		done <- nil // for the cleanup
		t.Fatalf("ferry stopped before listening: %v\n%s", err, logs)
	}
	return s, as, logs
}

// testLogger logs to t, so that a failing pair shows what the front saw.
func testLogger(t *testing.T) *zerolog.Logger {
	l := zerolog.New(zerolog.ConsoleWriter{Out: testWriter{t}, NoColor: true}).Level(zerolog.InfoLevel)
	return &l
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// tlsFront serves h on a TLS loopback listener: a web server in front.
func tlsFront(t *testing.T, h http.Handler) (string, *http.Client, string) {
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	c := srv.Client()
	c.Timeout = 60 * time.Second
	return srv.URL, c, port
}

func matrixFronts() []matrixFront {
	return []matrixFront{
		{name: "http", start: func(t *testing.T, args []string) (string, *http.Client, string) {
			a := startMatrixFerry(t, "http://127.0.0.1:0", args)
			_, port, _ := net.SplitHostPort(a)
			return "http://" + a, &http.Client{Timeout: 60 * time.Second}, port
		}},
		{name: "https", https: true, start: func(t *testing.T, args []string) (string, *http.Client, string) {
			c := writeTestCert(t, t.TempDir(), 1)
			a := startMatrixFerry(t, c.httpsListen(), args)
			_, port, _ := net.SplitHostPort(a)
			return "https://" + a, c.client(true), port
		}},
		{name: "fastcgi", https: true, start: func(t *testing.T, args []string) (string, *http.Client, string) {
			a := startMatrixFerry(t, "fastcgi://127.0.0.1:0", args)
			log := testLogger(t)
			c := &fastcgi.Client{Network: "tcp", Address: a, Logger: log}
			t.Cleanup(c.CloseIdle)
			return tlsFront(t, fastcgi.NewHandler(c, nil, cgi.Settings{Logger: log}))
		}},
		{name: "scgi", https: true, start: func(t *testing.T, args []string) (string, *http.Client, string) {
			a := startMatrixFerry(t, "scgi://127.0.0.1:0", args)
			log := testLogger(t)
			c := &scgi.Client{Network: "tcp", Address: a, Logger: log}
			return tlsFront(t, scgi.NewHandler(c, nil, cgi.Settings{Logger: log}))
		}},
		{name: "cgi", https: true, start: func(t *testing.T, args []string) (string, *http.Client, string) {
			self, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			// User root: the test binary sits where only root may enter
			// (the build cache); ferry, as root, runs the scripts as
			// www-data.
			h := &cgi.Handler{Path: self, Args: args, Settings: cgi.Settings{Env: []string{"FERRY_TEST_CGI_FRONT=1"}}, MaxConcurrent: 16, User: "root"}
			return tlsFront(t, h)
		}},
	}
}

func TestFrontBackMatrix(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh for the CGI back")
	}
	for _, f := range matrixFronts() {
		for _, b := range matrixBacks() {
			t.Run(f.name+"→"+b.name, func(t *testing.T) {
				good, bad := b.mount(t)
				args := []string{good}
				if bad != "" {
					args = append(args, bad)
				}
				base, client, port := f.start(t, args)
				checkMatrixPair(t, base, client, port, f.https, b.badPath)
			})
		}
	}
}

// checkMatrixPair runs the core checks through one front to one back.
func checkMatrixPair(t *testing.T, base string, client *http.Client, port string, https bool, badPath string) {
	get := func(method, path string, body io.Reader) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, body)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return resp
	}
	readAll := func(resp *http.Response) string {
		t.Helper()
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Errorf("reading %s: %v", resp.Request.URL.Path, err)
		}
		return string(b)
	}

	// The environment and PATH_INFO, end to end.
	resp := get("GET", matrixPrefix+"/env/a%20b/c?q=1&r=x%2Fy", nil)
	env := readAll(resp)
	wantHTTPS := ""
	if https {
		wantHTTPS = "on"
	}
	for _, want := range []string{
		"script_name=" + matrixPrefix, "path_info=/env/a b/c", "query=q=1&r=x%2Fy",
		"remote_addr=127.0.0.1", "server_port=" + port, "https=" + wantHTTPS,
	} {
		if !strings.Contains(env, want+"\n") {
			t.Errorf("environment: want %q in\n%s", want, env)
		}
	}

	// A 1 MiB POST.
	body := strings.Repeat("0123456789abcdef", 1<<16)
	resp = get("POST", matrixPrefix+"/post", strings.NewReader(body))
	if got, want := strings.TrimSpace(readAll(resp)), fmt.Sprintf("%x", sha256.Sum256([]byte(body))); got != want {
		t.Errorf("1 MiB POST: the application hashed %q; want %q", got, want)
	}

	// Status.
	resp = get("GET", matrixPrefix+"/status", nil)
	if got := readAll(resp); resp.StatusCode != http.StatusCreated || got != "created" {
		t.Errorf("Status: %d %q; want 201 \"created\"", resp.StatusCode, got)
	}

	// Two Set-Cookie headers.
	resp = get("GET", matrixPrefix+"/cookies", nil)
	readAll(resp)
	if got := resp.Header.Values("Set-Cookie"); len(got) != 2 || got[0] != "a=1" || got[1] != "b=2" {
		t.Errorf("Set-Cookie: %q; want [a=1 b=2]", got)
	}

	// Streaming: the first line arrives while the application waits for
	// the test to let it finish.
	// (A path the shell script can take from QUERY_STRING as it is.)
	dir, err := os.MkdirTemp("", "ferrymark")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the script may run as www-data
		t.Fatal(err)
	}
	mark := filepath.Join(dir, "go-on")
	resp = get("GET", matrixPrefix+"/stream?mark="+mark, nil)
	br := bufio.NewReader(resp.Body)
	first := make(chan string, 1)
	go func() { l, _ := br.ReadString('\n'); first <- l }()
	select {
	case l := <-first:
		if l != "first\n" {
			t.Errorf("stream: first line %q", l)
		}
	case <-time.After(15 * time.Second):
		t.Error("stream: the first line did not arrive before the response ended: not streamed")
	}
	os.WriteFile(mark, nil, 0o644)
	rest, _ := io.ReadAll(br)
	resp.Body.Close()
	if string(rest) != "second\n" {
		t.Errorf("stream: rest %q; want \"second\\n\"", rest)
	}

	// A 20 MiB response.
	resp = get("GET", matrixPrefix+"/big", nil)
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || n != matrixBigSize || fmt.Sprintf("%x", h.Sum(nil)) != fmt.Sprintf("%x", sha256.Sum256(make([]byte, matrixBigSize))) {
		t.Errorf("20 MiB response: %d bytes, %v; want %d zero bytes", n, err, matrixBigSize)
	}

	// A broken application: 502, and ferry goes on serving.
	resp = get("GET", badPath, nil)
	readAll(resp)
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("broken application: %d; want 502", resp.StatusCode)
	}
	resp = get("GET", matrixPrefix+"/status", nil)
	if readAll(resp); resp.StatusCode != http.StatusCreated {
		t.Errorf("after the broken application: %d; want 201", resp.StatusCode)
	}
}

func writeExec(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
}
