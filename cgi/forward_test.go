package cgi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// stream is an exchange's answer: its text, then err (nil: io.EOF).
type stream struct {
	r   io.Reader
	err error
}

func (s *stream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF && s.err != nil {
		return n, s.err
	}
	return n, err
}

func (s *stream) Close() error { return nil }

// transportFunc adapts a function to a Transport.
type transportFunc func(ctx context.Context, req *AppRequest) (*AppResponse, error)

func (f transportFunc) RoundTrip(ctx context.Context, req *AppRequest) (*AppResponse, error) {
	return f(ctx, req)
}

func TestForwarding(t *testing.T) {
	errBusy := &StatusError{Status: http.StatusServiceUnavailable, Err: errors.New("busy")}
	for _, tt := range []struct {
		name       string
		scriptErr  error
		answer     string
		answerErr  error // after the answer
		doErr      error
		statusLine bool
		status     int
		body       string
		header     string // "Name: value" expected
		aborted    bool
	}{
		{name: "document", answer: "Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nhi", status: 201, body: "hi"},
		{name: "no script", scriptErr: fs.ErrNotExist, status: 404},
		{name: "forbidden", scriptErr: fmt.Errorf("x: %w", fs.ErrPermission), status: 403},
		{name: "invalid", scriptErr: ErrInvalidMetaVariable, status: 400},
		{name: "busy", doErr: errBusy, status: 503, header: "Retry-After: 1"},
		{name: "refused", doErr: errors.New("connection refused"), status: 502},
		{name: "malformed", answer: "not a header block\n", status: 502},
		{name: "status line refused by default", answer: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nok", status: 502},
		{name: "status line", statusLine: true, answer: "HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\n\r\nok", status: 202, body: "ok"},
		{name: "local redirect", answer: "Location: /elsewhere\r\n\r\n", status: 302, header: "Location: /elsewhere"},
		{name: "cut short", answer: "Content-Type: text/plain\r\n\r\npartial", answerErr: errors.New("reset"), aborted: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var gotParams []string
			x := transportFunc(func(ctx context.Context, req *AppRequest) (*AppResponse, error) {
				gotParams = req.Params
				if tt.doErr != nil {
					return nil, tt.doErr
				}
				body := &stream{r: strings.NewReader(tt.answer), err: tt.answerErr}
				return &AppResponse{Body: body, Ready: func() bool { return true }, StatusLine: tt.statusLine}, nil
			})
			f := Forwarder{Name: "test", Transport: x, Settings: Settings{Env: []string{"EXTRA=1"}}}
			r := httptest.NewRequest("GET", "/app/x/y", nil)
			w := httptest.NewRecorder()
			aborted := false
			func() {
				defer func() {
					if v := recover(); v != nil {
						aborted = v == http.ErrAbortHandler
					}
				}()
				s, err := Mount{Prefix: "/app/", Root: "/srv"}.Resolve(r)
				if err != nil {
					t.Fatal(err)
				}
				f.ServeScript(w, r, s, tt.scriptErr)
			}()
			if aborted != tt.aborted {
				t.Fatalf("aborted = %v; want %v", aborted, tt.aborted)
			}
			if tt.aborted {
				return
			}
			if w.Code != tt.status || (tt.body != "" && w.Body.String() != tt.body) {
				t.Errorf("got %d %q; want %d %q", w.Code, w.Body, tt.status, tt.body)
			}
			if name, value, ok := strings.Cut(tt.header, ": "); ok && w.Header().Get(name) != value {
				t.Errorf("%s = %q; want %q", name, w.Header().Get(name), value)
			}
			if tt.scriptErr == nil {
				env := strings.Join(gotParams, "\n") + "\n"
				for _, want := range []string{"EXTRA=1\n", "SCRIPT_NAME=/app\n", "PATH_INFO=/x/y\n", "DOCUMENT_ROOT=/srv\n"} {
					if !strings.Contains(env, want) {
						t.Errorf("params lack %q:\n%s", want, env)
					}
				}
			} else if gotParams != nil {
				t.Error("the application was asked although no script was found")
			}
		})
	}
}

// TestForwardingNoContentTypeNotSniffed: an application's answer
// without a Content-Type goes out without one, as a script's does (RFC
// 3875 § 6.3.1), through a real server: net/http sniffed one.
func TestForwardingNoContentTypeNotSniffed(t *testing.T) {
	x := transportFunc(func(ctx context.Context, req *AppRequest) (*AppResponse, error) {
		body := &stream{r: strings.NewReader("Status: 200 OK\r\n\r\n<html><script>alert(1)</script>")}
		return &AppResponse{Body: body}, nil
	})
	srv := httptest.NewServer(&Forwarder{Name: "test", Transport: x, Resolver: Mount{Prefix: "/app/"}})
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/app/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "<html><script>alert(1)</script>" {
		t.Fatalf("got %d %q; want 200 and the application's body", resp.StatusCode, b)
	}
	if got := resp.Header.Values("Content-Type"); got != nil {
		t.Errorf("Content-Type = %q; want none", got)
	}
}

func TestMount(t *testing.T) {
	for _, tt := range []struct{ prefix, path, name, info string }{
		{"/app/", "/app/x/y", "/app", "/x/y"},
		{"/app", "/app", "/app", ""},
		{"/app/", "/app/", "/app", "/"},
		{"/", "/a/b", "", "/a/b"},
		{"", "/a/b", "", "/a/b"},
	} {
		s, err := Mount{Prefix: tt.prefix}.Resolve(httptest.NewRequest("GET", tt.path, nil))
		if err != nil || s.Name != tt.name || s.PathInfo != tt.info {
			t.Errorf("Mount{%q}.Resolve(%q) = %q, %q, %v; want %q, %q", tt.prefix, tt.path, s.Name, s.PathInfo, err, tt.name, tt.info)
		}
	}
	for _, tt := range []struct{ prefix, path string }{{"/app/", "/apple"}, {"/app", "/other"}} {
		_, err := Mount{Prefix: tt.prefix}.Resolve(httptest.NewRequest("GET", tt.path, nil))
		if resolveStatus(err) != http.StatusNotFound {
			t.Errorf("Mount{%q}.Resolve(%q): %v; want 404", tt.prefix, tt.path, err)
		}
	}
}

// TestForwardingHeader: the Forwarder sets the application's fields in
// w.Header() as WriteHeader copies a Response's: a field replaces what the
// header held under its name, repeats are kept in order, past the fields
// the parser holds in place too; a response refused adds none.
func TestForwardingHeader(t *testing.T) {
	var many strings.Builder
	for i := range 40 {
		fmt.Fprintf(&many, "X-F%d: %d\r\nSet-Cookie: c%d\r\n", i%7, i, i)
	}
	for _, answer := range []string{
		"Content-Type: text/plain\r\nSet-Cookie: a=1\r\nX-Pre: mine\r\nSet-Cookie: b=2\r\n\r\nok",
		"Content-Type: text/plain\r\nSet-Cookie: a=1\r\nX-Pre: mine\r\nSet-Cookie: b=2\r\n" + many.String() + "\r\nok",
		"Content-Type: text/plain\r\nX-Pre: mine\r\nbad line\r\n\r\nok",
	} {
		f := Forwarder{Transport: transportFunc(func(ctx context.Context, req *AppRequest) (*AppResponse, error) {
			return &AppResponse{Body: &stream{r: strings.NewReader(answer)}}, nil
		})}
		w := httptest.NewRecorder()
		w.Header().Set("X-Pre", "front")
		w.Header().Set("X-Front", "kept")
		r := httptest.NewRequest("GET", "/x", nil)
		f.ServeScript(w, r, Script{}, nil)

		br := bufio.NewReader(strings.NewReader(answer))
		want, err := ReadResponse(br, false, HeaderLimits{})
		if err != nil {
			if w.Code != http.StatusBadGateway || w.Header().Get("X-Pre") != "front" || w.Header()["Set-Cookie"] != nil {
				t.Errorf("refused answer: %d, header %v; want 502 and the front's fields alone", w.Code, w.Header())
			}
			continue
		}
		wantHeader := http.Header{"X-Pre": {"front"}, "X-Front": {"kept"}}
		for k, v := range want.Header {
			wantHeader[k] = v
		}
		got := w.Result().Header
		got.Del("Content-Length") // set by the recorder
		if w.Code != 200 || !reflect.DeepEqual(got, wantHeader) {
			t.Errorf("header:\n%v\nwant\n%v", got, wantHeader)
		}
		if c := got["Set-Cookie"]; len(c) < 2 || c[0] != "a=1" || c[1] != "b=2" {
			t.Errorf("Set-Cookie = %q", c)
		}
	}
}
