package fastcgi_test

// Interop with an independent FastCGI client: gofast
// (github.com/yookoala/gofast), the only Go client that speaks the
// Authorizer and Filter roles as well as Responder. Each test starts a
// fastcgi.Server on TCP and on a Unix socket and drives it through gofast's
// own http.Handler front ends, the way a gofast-based web server would.
//
// gofast has bugs of its own that shape these tests:
//   - its response parser (a copy of an old net/http/cgi one) reads headers
//     through a 1024-byte bufio.Reader and gives up on a longer line, leaving
//     its record reader blocked on a pipe nobody reads: every header here is
//     short;
//   - it multiplexes nothing (each request's reader takes every record on the
//     connection), so each request gets its own client and connection, as
//     gofast.NewHandler does;
//   - MapHeader forwards a Proxy header as HTTP_PROXY (httpoxy): the
//     responder test sends one and checks that ferry drops it;
//   - its Authorizer sends the request body on FCGI_STDIN, which the spec
//     does not provide for: the authorizer test checks that ferry's handler
//     still sees no body.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/yookoala/gofast"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/fastcgi"
	"github.com/ferrygw/ferry/internal/leakcheck"
)

// gofastNetworks are the transports each interop test runs on.
var gofastNetworks = []string{"tcp", "unix"}

// startGofastServer serves h with a fastcgi.Server on network ("tcp" on
// 127.0.0.1, or "unix" in a temporary directory) and returns a gofast client
// factory that dials it. The server is shut down at cleanup.
func startGofastServer(t *testing.T, network string, h http.Handler) gofast.ClientFactory {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "app.sock")
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &fastcgi.Server{Handler: h}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != fastcgi.ErrServerClosed {
			t.Errorf("Serve = %v; want ErrServerClosed", err)
		}
	})
	return gofast.SimpleClientFactory(gofast.SimpleConnFactory(network, l.Addr().String()))
}

// gofastDo serves req with the gofast front end h and returns the recorded
// response. A deadline keeps a gofast hang from stalling the test binary.
func gofastDo(t *testing.T, h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(ctx))
	if ctx.Err() != nil {
		t.Fatalf("%s %s through gofast: %v", req.Method, req.RequestURI, ctx.Err())
	}
	return rec
}

// failf answers 500 with a message for the test to report: a handler runs
// in the server's goroutine, where t.Fatal is not allowed.
func failf(w http.ResponseWriter, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, "handler: "+format+"\n", args...)
}

func checkResponse(t *testing.T, what string, rec *httptest.ResponseRecorder, wantStatus int, wantBody string) {
	t.Helper()
	if rec.Code != wantStatus || rec.Body.String() != wantBody {
		t.Errorf("%s = %d %q; want %d %q", what, rec.Code, rec.Body.String(), wantStatus, wantBody)
	}
}

// interopResponder answers GET with what it saw, and echoes a POST body
// with status 201.
func interopResponder(w http.ResponseWriter, r *http.Request) {
	if role := fastcgi.RoleOf(r); role != fastcgi.RoleResponder {
		failf(w, "role %s; want RESPONDER", role)
		return
	}
	vars := cgi.Origin(r.Context())
	switch r.Method {
	case http.MethodGet:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-App", "ferry")
		fmt.Fprintf(w, "method=%s\npath=%s\nquery=%s\ny=%s\nscript=%s\npath_info=%s\nx-test=%s\nproxy=%q\nhost=%s\n",
			r.Method, r.URL.Path, r.URL.RawQuery, r.URL.Query().Get("y"), vars["SCRIPT_NAME"], vars["PATH_INFO"],
			r.Header.Get("X-Test"), r.Header.Get("Proxy"), r.Host)
	case http.MethodPost:
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.Header().Set("X-Content-Length", strconv.FormatInt(r.ContentLength, 10))
		w.WriteHeader(http.StatusCreated)
		if _, err := io.Copy(w, r.Body); err != nil {
			panic(http.ErrAbortHandler)
		}
	default:
		w.Header().Set("Allow", "GET, POST")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		io.WriteString(w, "no\n")
	}
}

// bigBody is n bytes of varied text: it crosses FastCGI's 64 KiB record
// limit and gofast's 1 KiB write chunks.
func bigBody(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d: the quick brown fox jumps over the lazy dog\n", i)
	}
	return b.Bytes()[:n]
}

// TestGofastResponder drives the Responder role from gofast's PHP-style
// front end, which splits /app.php/extra/path into SCRIPT_NAME and PATH_INFO.
func TestGofastResponder(t *testing.T) {
	for _, network := range gofastNetworks {
		t.Run(network, func(t *testing.T) {
			leakcheck.Check(t)
			factory := startGofastServer(t, network, http.HandlerFunc(interopResponder))
			front := gofast.NewHandler(gofast.NewPHPFS(t.TempDir())(gofast.BasicSession), factory)

			t.Run("GET", func(t *testing.T) {
				req := httptest.NewRequest(http.MethodGet, "/app.php/extra/path?x=1&y=%2F", nil)
				req.Header.Set("X-Test", "hello")
				req.Header.Set("Proxy", "http://evil.example:3128") // gofast forwards it as HTTP_PROXY
				rec := gofastDo(t, front, req)
				checkResponse(t, "GET /app.php/extra/path", rec, http.StatusOK,
					"method=GET\npath=/app.php/extra/path\nquery=x=1&y=%2F\ny=/\nscript=/app.php\npath_info=/extra/path\n"+
						"x-test=hello\nproxy=\"\"\nhost=example.com\n")
				if got := rec.Header().Get("Content-Type"); got != "text/plain; charset=utf-8" {
					t.Errorf("Content-Type = %q", got)
				}
				if got := rec.Header().Get("X-App"); got != "ferry" {
					t.Errorf("X-App = %q; want ferry", got)
				}
			})

			t.Run("POST", func(t *testing.T) {
				for _, size := range []int{0, 1, 1024, 65535, 65536, 200_000} {
					body := bigBody(size)
					req := httptest.NewRequest(http.MethodPost, "/app.php", bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/octet-stream")
					rec := gofastDo(t, front, req)
					if rec.Code != http.StatusCreated || !bytes.Equal(rec.Body.Bytes(), body) {
						t.Errorf("POST %d bytes = %d, %d bytes back (equal: %v); want 201 and the body",
							size, rec.Code, rec.Body.Len(), bytes.Equal(rec.Body.Bytes(), body))
					}
					if got := rec.Header().Get("X-Content-Length"); got != strconv.Itoa(size) {
						t.Errorf("POST %d bytes: handler saw ContentLength %s", size, got)
					}
					if got := rec.Header().Get("Content-Type"); got != "application/octet-stream" {
						t.Errorf("POST %d bytes: Content-Type = %q", size, got)
					}
				}
			})

			t.Run("PUT", func(t *testing.T) {
				rec := gofastDo(t, front, httptest.NewRequest(http.MethodPut, "/app.php", strings.NewReader("x")))
				checkResponse(t, "PUT /app.php", rec, http.StatusMethodNotAllowed, "no\n")
				if got := rec.Header().Get("Allow"); got != "GET, POST" {
					t.Errorf("Allow = %q", got)
				}
			})
		})
	}
}

// TestGofastAuthorizer drives the Authorizer role through gofast's
// Authorizer middleware: a 200 with Variable-X-User reaches the protected
// handler as the X-User header; a 403 goes back to the client as it is.
func TestGofastAuthorizer(t *testing.T) {
	authz := func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if role := fastcgi.RoleOf(r); role != fastcgi.RoleAuthorizer || err != nil || len(body) != 0 || r.ContentLength != 0 {
			failf(w, "role %s, body %q (%v), ContentLength %d; want AUTHORIZER and no body", role, body, err, r.ContentLength)
			return
		}
		if r.Header.Get("Authorization") != "Bearer good" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "denied\n")
			return
		}
		w.Header().Set("Variable-X-User", "alice")
		w.WriteHeader(http.StatusOK)
	}
	for _, network := range gofastNetworks {
		t.Run(network, func(t *testing.T) {
			leakcheck.Check(t)
			factory := startGofastServer(t, network, http.HandlerFunc(authz))
			var innerCalls atomic.Int32
			inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				innerCalls.Add(1)
				body, _ := io.ReadAll(r.Body)
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				if len(body) > 64 {
					fmt.Fprintf(w, "hello %s, %d bytes\n", r.Header.Get("X-User"), len(body))
					return
				}
				fmt.Fprintf(w, "hello %s, body %q\n", r.Header.Get("X-User"), body)
			})
			front := gofast.NewAuthorizer(factory, gofast.NewAuthPrepare()(gofast.BasicSession)).Wrap(inner)

			for _, tc := range []struct {
				name, method, auth, body string
				wantStatus               int
				wantBody                 string
				wantInner                bool
			}{
				{"allowed", http.MethodGet, "Bearer good", "", http.StatusOK, "hello alice, body \"\"\n", true},
				// gofast sends the body on STDIN to the authorizer too.
				{"allowed-post", http.MethodPost, "Bearer good", "name=bob", http.StatusOK, "hello alice, body \"name=bob\"\n", true},
				// More STDIN than one record, arriving after the authorizer
				// answered: ferry must ignore it, not stall or break the connection.
				{"allowed-big-post", http.MethodPost, "Bearer good", strings.Repeat("x", 300_000), http.StatusOK, "hello alice, 300000 bytes\n", true},
				{"denied", http.MethodGet, "Bearer bad", "", http.StatusForbidden, "denied\n", false},
				{"no-credentials", http.MethodPost, "", "name=eve", http.StatusForbidden, "denied\n", false},
			} {
				t.Run(tc.name, func(t *testing.T) {
					innerCalls.Store(0)
					var body io.Reader
					if tc.body != "" {
						body = strings.NewReader(tc.body)
					}
					req := httptest.NewRequest(tc.method, "/private/page?id=7", body)
					if tc.auth != "" {
						req.Header.Set("Authorization", tc.auth)
					}
					rec := gofastDo(t, front, req)
					checkResponse(t, tc.method+" "+tc.name, rec, tc.wantStatus, tc.wantBody)
					if got := innerCalls.Load() == 1; got != tc.wantInner {
						t.Errorf("protected handler called %d times; want it called: %v", innerCalls.Load(), tc.wantInner)
					}
				})
			}
		})
	}
}

// TestGofastFilter drives the Filter role through gofast's file-system
// filter front end: the handler reads the file from FCGI_DATA, checks it
// against FCGI_DATA_LENGTH and FCGI_DATA_LAST_MOD, and upper-cases it.
func TestGofastFilter(t *testing.T) {
	filter := func(w http.ResponseWriter, r *http.Request) {
		vars := cgi.Origin(r.Context())
		data := fastcgi.FilterData(r)
		if role := fastcgi.RoleOf(r); role != fastcgi.RoleFilter || data == nil {
			failf(w, "role %s, FilterData nil: %v; want FILTER and data", role, data == nil)
			return
		}
		stdin, err := io.ReadAll(r.Body)
		if err != nil {
			failf(w, "reading STDIN: %v", err)
			return
		}
		b, err := io.ReadAll(data)
		if err != nil {
			failf(w, "reading DATA: %v", err)
			return
		}
		if n := vars["FCGI_DATA_LENGTH"]; n != strconv.Itoa(len(b)) {
			failf(w, "FCGI_DATA_LENGTH %q, %d bytes of DATA", n, len(b))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Data-Length", vars["FCGI_DATA_LENGTH"])
		w.Header().Set("X-Data-Last-Mod", vars["FCGI_DATA_LAST_MOD"])
		w.Write(bytes.ToUpper(stdin))
		w.Write(bytes.ToUpper(b))
	}
	dir := t.TempDir()
	mtime := time.Unix(1700000000, 0)
	files := map[string][]byte{
		"small.txt": []byte("hello, filter\n"),
		"empty.txt": nil,
		"big.txt":   bigBody(150_000),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	for _, network := range gofastNetworks {
		t.Run(network, func(t *testing.T) {
			leakcheck.Check(t)
			factory := startGofastServer(t, network, http.HandlerFunc(filter))
			front := gofast.NewHandler(gofast.NewFilterFS(http.Dir(dir))(gofast.BasicSession), factory)
			for _, tc := range []struct {
				name, file, stdin string
			}{
				{"small", "small.txt", ""},
				{"empty", "empty.txt", ""},
				{"big", "big.txt", ""},
				{"stdin-and-data", "small.txt", "stdin first: "}, // STDIN, then DATA
			} {
				t.Run(tc.name, func(t *testing.T) {
					var req *http.Request
					if tc.stdin == "" {
						req = httptest.NewRequest(http.MethodGet, "/"+tc.file, nil)
					} else {
						req = httptest.NewRequest(http.MethodPost, "/"+tc.file, strings.NewReader(tc.stdin))
					}
					rec := gofastDo(t, front, req)
					want := strings.ToUpper(tc.stdin) + string(bytes.ToUpper(files[tc.file]))
					if rec.Code != http.StatusOK || rec.Body.String() != want {
						got := rec.Body.String()
						if len(got) > 200 {
							got = got[:200] + "..."
						}
						t.Errorf("%s /%s = %d, %d bytes %q; want 200 and the %d bytes upper-cased",
							req.Method, tc.file, rec.Code, rec.Body.Len(), got, len(want))
					}
					if got, want := rec.Header().Get("X-Data-Length"), strconv.Itoa(len(files[tc.file])); got != want {
						t.Errorf("FCGI_DATA_LENGTH = %q; want %q", got, want)
					}
					if got := rec.Header().Get("X-Data-Last-Mod"); got != "1700000000" {
						t.Errorf("FCGI_DATA_LAST_MOD = %q; want 1700000000", got)
					}
				})
			}
		})
	}
}
