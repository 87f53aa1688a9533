package cgi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// echoHandler answers with what it saw of the request.
var echoHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "%s %s q=%s host=%s remote=%s len=%d body=%s", r.Method, r.URL.Path, r.URL.RawQuery,
		r.Host, r.RemoteAddr, r.ContentLength, body)
})

func serveEnv() map[string]string {
	return map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1",
		"SERVER_PROTOCOL":   "HTTP/1.1",
		"SERVER_SOFTWARE":   "test",
		"REQUEST_METHOD":    "POST",
		"REQUEST_URI":       "/echo/p%20q?a=1",
		"SCRIPT_NAME":       "/echo",
		"PATH_INFO":         "/p q",
		"QUERY_STRING":      "a=1",
		"SERVER_NAME":       "example.com",
		"SERVER_PORT":       "80",
		"REMOTE_ADDR":       "192.0.2.1",
		"REMOTE_PORT":       "4000",
		"CONTENT_LENGTH":    "5",
		"CONTENT_TYPE":      "text/plain",
	}
}

func TestServeEnv(t *testing.T) {
	tests := []struct {
		name      string
		edit      map[string]string
		stdin     string
		want      string
		stdinLeft int // bytes of stdin the handler must not have read
	}{
		{
			name:  "echo",
			stdin: "hello",
			want: "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n" +
				"POST /echo/p q q=a=1 host=example.com remote=192.0.2.1:4000 len=5 body=hello",
		},
		{
			name:      "CONTENT_LENGTH limits the body read",
			stdin:     "helloEXTRA BYTES",
			want:      "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nPOST /echo/p q q=a=1 host=example.com remote=192.0.2.1:4000 len=5 body=hello",
			stdinLeft: len("EXTRA BYTES"),
		},
		{
			name:      "no CONTENT_LENGTH, no body",
			edit:      map[string]string{"REQUEST_METHOD": "GET", "CONTENT_LENGTH": ""},
			stdin:     "not for the handler",
			want:      "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nGET /echo/p q q=a=1 host=example.com remote=192.0.2.1:4000 len=0 body=",
			stdinLeft: len("not for the handler"),
		},
		{
			name:      "CONTENT_LENGTH 0",
			edit:      map[string]string{"CONTENT_LENGTH": "0"},
			stdin:     "x",
			want:      "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nPOST /echo/p q q=a=1 host=example.com remote=192.0.2.1:4000 len=0 body=",
			stdinLeft: 1,
		},
		{
			name:  "HEAD drops the body",
			edit:  map[string]string{"REQUEST_METHOD": "HEAD", "CONTENT_LENGTH": ""},
			want:  "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n",
			stdin: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := serveEnv()
			for k, v := range tt.edit {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			stdin := strings.NewReader(tt.stdin)
			var stdout, stderr bytes.Buffer
			if err := ServeEnv(context.Background(), env, stdin, &stdout, &stderr, echoHandler); err != nil {
				t.Fatalf("ServeEnv: %v", err)
			}
			if got := stdout.String(); got != tt.want {
				t.Errorf("ServeEnv stdout = %q; want %q", got, tt.want)
			}
			if stdin.Len() != tt.stdinLeft {
				t.Errorf("ServeEnv left %d stdin bytes unread; want %d", stdin.Len(), tt.stdinLeft)
			}
			if stderr.Len() != 0 {
				t.Errorf("ServeEnv stderr = %q; want nothing", stderr.String())
			}
		})
	}
}

func TestServeEnvContext(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "v")
	env := serveEnv()
	var gotValue any
	var gotOrigin map[string]string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotValue = r.Context().Value(key{})
		gotOrigin = Origin(r.Context())
	})
	if err := ServeEnv(ctx, env, strings.NewReader("hello"), io.Discard, io.Discard, h); err != nil {
		t.Fatalf("ServeEnv: %v", err)
	}
	if gotValue != "v" {
		t.Errorf("handler context value = %v; want %q", gotValue, "v")
	}
	if !maps.Equal(gotOrigin, env) {
		t.Errorf("Origin(handler context) = %v; want the environment", gotOrigin)
	}
}

func TestServeEnvPanic(t *testing.T) {
	var stdout, stderr bytes.Buffer
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	err := ServeEnv(context.Background(), serveEnv(), strings.NewReader("hello"), &stdout, &stderr, h)
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("ServeEnv with a panicking handler: error = %v; want one naming the panic", err)
	}
	want := "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n500 Internal Server Error\n"
	if got := stdout.String(); got != want {
		t.Errorf("ServeEnv stdout = %q; want %q", got, want)
	}
	if got := stderr.String(); !strings.Contains(got, "boom") || !strings.Contains(got, "/echo/p q") {
		t.Errorf("ServeEnv stderr = %q; want the panic and the path", got)
	}
}

func TestServeEnvPanicAfterBody(t *testing.T) {
	var stdout, stderr bytes.Buffer
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("late")
	})
	err := ServeEnv(context.Background(), serveEnv(), strings.NewReader("hello"), &stdout, &stderr, h)
	if err == nil {
		t.Errorf("ServeEnv with a late panic: error = nil; want the panic")
	}
	want := "Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\npartial"
	if got := stdout.String(); got != want {
		t.Errorf("ServeEnv stdout = %q; want %q (nothing added after the sent header)", got, want)
	}
}

// TestServeEnvPanicAfterWriteHeader: WriteHeader only records the status
// ("it is sent with the first body bytes"), so a handler that called it and
// then panicked had sent nothing: it must get the 500, without the fields it
// had set for the response it never finished.
func TestServeEnvPanicAfterWriteHeader(t *testing.T) {
	var stdout bytes.Buffer
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(http.StatusCreated)
		panic("before the body")
	})
	err := ServeEnv(context.Background(), serveEnv(), strings.NewReader("hello"), &stdout, io.Discard, h)
	if err == nil {
		t.Errorf("ServeEnv: error = nil; want the panic")
	}
	want := "Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n500 Internal Server Error\n"
	if got := stdout.String(); got != want {
		t.Errorf("ServeEnv stdout = %q; want %q", got, want)
	}
}

// TestServeEnvAbortHandler: panic(http.ErrAbortHandler) is how a handler
// says the response must not look complete. Before any output, a 200 with an
// empty body is the one thing that must not come out.
func TestServeEnvAbortHandler(t *testing.T) {
	t.Run("mid body", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "half")
			panic(http.ErrAbortHandler)
		})
		err := ServeEnv(context.Background(), serveEnv(), strings.NewReader("hello"), &stdout, &stderr, h)
		if err == nil {
			t.Errorf("ServeEnv with ErrAbortHandler: error = nil; want non-nil")
		}
		if stderr.Len() != 0 {
			t.Errorf("ServeEnv with ErrAbortHandler: stderr = %q; want nothing (net/http does not log it)", stderr.String())
		}
		if strings.Contains(stdout.String(), "500") {
			t.Errorf("ServeEnv with ErrAbortHandler: stdout = %q; want no 500 after the header was sent", stdout.String())
		}
	})
	t.Run("before output", func(t *testing.T) {
		var stdout bytes.Buffer
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
		err := ServeEnv(context.Background(), serveEnv(), strings.NewReader("hello"), &stdout, io.Discard, h)
		if err == nil {
			t.Errorf("ServeEnv with ErrAbortHandler: error = nil; want non-nil")
		}
		if strings.HasPrefix(stdout.String(), "Status: 200") {
			t.Errorf("ServeEnv with ErrAbortHandler before output: stdout = %q; want no successful response", stdout.String())
		}
	})
}

func TestServeEnvNotCGI(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		missing bool
	}{
		{"empty environment", map[string]string{}, true},
		{"no REQUEST_METHOD", map[string]string{"SERVER_SOFTWARE": "x", "REQUEST_URI": "/"}, true},
		{"bad CONTENT_LENGTH", map[string]string{"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "-1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout bytes.Buffer
			called := false
			h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called = true })
			err := ServeEnv(context.Background(), tt.env, strings.NewReader(""), &stdout, io.Discard, h)
			if err == nil || !strings.Contains(err.Error(), "not a CGI request") {
				t.Errorf("ServeEnv(%q) error = %v; want \"not a CGI request\"", tt.env, err)
			}
			if got := errors.Is(err, ErrMissingMetaVariable); got != tt.missing {
				t.Errorf("ServeEnv(%q) error %v: Is(ErrMissingMetaVariable) = %v; want %v", tt.env, err, got, tt.missing)
			}
			if called || stdout.Len() != 0 {
				t.Errorf("ServeEnv(%q): handler called %v, stdout %q; want neither", tt.env, called, stdout.String())
			}
		})
	}
}

// registerDefault registers the nil-handler test's page on
// DefaultServeMux once, so the test can run again (-count).
var registerDefault = sync.OnceFunc(func() {
	http.HandleFunc("/ferry-cgi-serveenv-nil-handler-test", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "from DefaultServeMux") })
})

func TestServeEnvNilHandler(t *testing.T) {
	const path = "/ferry-cgi-serveenv-nil-handler-test"
	registerDefault()
	env := map[string]string{"REQUEST_METHOD": "GET", "REQUEST_URI": path, "SERVER_NAME": "x"}
	var stdout bytes.Buffer
	if err := ServeEnv(context.Background(), env, strings.NewReader(""), &stdout, io.Discard, nil); err != nil {
		t.Fatalf("ServeEnv(nil handler): %v", err)
	}
	if !strings.HasSuffix(stdout.String(), "\r\n\r\nfrom DefaultServeMux") {
		t.Errorf("ServeEnv(nil handler) stdout = %q; want DefaultServeMux's answer", stdout.String())
	}
}

// TestServe runs Serve in a child process (this test binary again), the
// way a web server runs a CGI script: request in the environment and on
// stdin, response on stdout.
func TestServe(t *testing.T) {
	if os.Getenv("FERRY_CGI_SERVE_CHILD") == "1" {
		return // the child is TestServeChildProcess
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeChildProcess$")
	cmd.Env = []string{
		"FERRY_CGI_SERVE_CHILD=1",
		"GATEWAY_INTERFACE=CGI/1.1", "REQUEST_METHOD=POST", "REQUEST_URI=/s/x?y=1", "SCRIPT_NAME=/s",
		"PATH_INFO=/x", "QUERY_STRING=y=1", "SERVER_NAME=example.com", "SERVER_PORT=8080",
		"REMOTE_ADDR=192.0.2.1", "CONTENT_LENGTH=3", "SERVER_PROTOCOL=HTTP/1.1",
	}
	cmd.Stdin = strings.NewReader("abcdef")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v; stderr: %s", err, stderr.String())
	}
	want := "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nPOST /s/x q=y=1 host=example.com:8080 remote=192.0.2.1 len=3 body=abc"
	if got := stdout.String(); got != want {
		t.Errorf("Serve stdout = %q; want %q (stderr %q)", got, want, stderr.String())
	}
}

func TestServeChildProcess(t *testing.T) {
	if os.Getenv("FERRY_CGI_SERVE_CHILD") != "1" {
		t.Skip("run by TestServe as a CGI script")
	}
	err := Serve(echoHandler)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Serve:", err)
		os.Exit(1)
	}
	os.Exit(0) // nothing of the test framework may reach stdout
}
