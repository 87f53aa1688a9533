package cgi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// envMap turns AppendEnv output into a map, failing on a malformed entry or a
// name given twice: a script would see only one of the two values.
func envMap(t testing.TB, env []string) map[string]string {
	t.Helper()
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !validVarName(k) {
			t.Fatalf("env entry %q is not NAME=VALUE", kv)
		}
		if old, dup := m[k]; dup {
			t.Fatalf("env has %s twice: %q and %q", k, old, v)
		}
		m[k] = v
	}
	return m
}

// envRequest builds a server-side request as net/http would hand it over:
// RemoteAddr and Host set, the local address in the context.
func envRequest(method, target string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr = "198.51.100.7:54321"
	r.Host = "www.example.com"
	local := &net.TCPAddr{IP: net.ParseIP("203.0.113.5"), Port: 8080}
	return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
}

func withLocalAddr(r *http.Request, a net.Addr) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, a))
}

// TestAppendEnvExact checks one request's whole environment, in order: the
// order is part of the contract (a fixed order, headers sorted by name).
func TestAppendEnvExact(t *testing.T) {
	r := envRequest("POST", "/cgi-bin/env.pl/a%20b/c?x=1&y=%41", strings.NewReader("hello"))
	r.Host = "www.example.com:8080"
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Add("Accept", "text/html")
	r.Header.Add("Accept", "*/*")
	r.Header.Add("Cookie", "a=1")
	r.Header.Add("Cookie", "b=2")
	r.Header.Set("User-Agent", "test/1.0")
	r.Header.Set("X-Forwarded-For", "192.0.2.9")
	s := Script{Name: "/cgi-bin/env.pl", PathInfo: "/a b/c", Filename: "/srv/cgi-bin/env.pl", Root: "/srv/www/"}

	got, err := AppendEnv([]string{"PATH=/bin"}, r, s, "ferry/test")
	if err != nil {
		t.Fatalf("AppendEnv: %v", err)
	}
	want := []string{
		"PATH=/bin",
		"GATEWAY_INTERFACE=CGI/1.1",
		"SERVER_SOFTWARE=ferry/test",
		"REQUEST_METHOD=POST",
		"QUERY_STRING=x=1&y=%41",
		"REQUEST_URI=/cgi-bin/env.pl/a%20b/c?x=1&y=%41",
		"SCRIPT_NAME=/cgi-bin/env.pl",
		"PATH_INFO=/a b/c",
		"PATH_TRANSLATED=/srv/www/a b/c",
		"SCRIPT_FILENAME=/srv/cgi-bin/env.pl",
		"DOCUMENT_ROOT=/srv/www/",
		"CONTENT_LENGTH=5",
		"CONTENT_TYPE=application/x-www-form-urlencoded",
		"REQUEST_SCHEME=http",
		"SERVER_PROTOCOL=HTTP/1.1",
		"SERVER_NAME=www.example.com",
		"SERVER_ADDR=203.0.113.5",
		"SERVER_PORT=8080",
		"REMOTE_ADDR=198.51.100.7",
		"REMOTE_HOST=198.51.100.7",
		"REMOTE_PORT=54321",
		"HTTP_HOST=www.example.com:8080",
		"HTTP_ACCEPT=text/html, */*",
		"HTTP_COOKIE=a=1; b=2",
		"HTTP_USER_AGENT=test/1.0",
		"HTTP_X_FORWARDED_FOR=192.0.2.9",
	}
	if !slices.Equal(got, want) {
		t.Errorf("AppendEnv =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	envMap(t, got)

	// Same input, same output: nothing depends on map order.
	for i := range 20 {
		again, err := AppendEnv([]string{"PATH=/bin"}, r, s, "ferry/test")
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("AppendEnv run %d = %q, %v; want %q", i, again, err, got)
		}
	}
}

// TestAppendEnvMetaVariables covers RFC 3875 § 4.1.1 to § 4.1.18 and the
// extra variables one by one.
func TestAppendEnvMetaVariables(t *testing.T) {
	const absent = "\x00absent" // marks a variable that must not be set
	tests := []struct {
		name   string
		req    func() *http.Request
		script Script
		want   map[string]string
	}{
		{
			name: "4.1.1 AUTH_TYPE, 4.1.10 REMOTE_IDENT, 4.1.11 REMOTE_USER unset without server auth",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.SetBasicAuth("alice", "secret")
				return r
			},
			want: map[string]string{"AUTH_TYPE": absent, "REMOTE_IDENT": absent, "REMOTE_USER": absent},
		},
		{
			name: "4.1.2 CONTENT_LENGTH from body length",
			req:  func() *http.Request { return envRequest("POST", "/x", strings.NewReader("12345678")) },
			want: map[string]string{"CONTENT_LENGTH": "8"},
		},
		{
			name: "4.1.2 CONTENT_LENGTH unset without body",
			req:  func() *http.Request { return envRequest("GET", "/x", nil) },
			want: map[string]string{"CONTENT_LENGTH": absent, "HTTP_CONTENT_LENGTH": absent},
		},
		{
			name: "4.1.2 CONTENT_LENGTH=0 for an explicit empty body",
			req: func() *http.Request {
				r := envRequest("POST", "/x", nil)
				r.Header.Set("Content-Length", "0")
				return r
			},
			want: map[string]string{"CONTENT_LENGTH": "0", "HTTP_CONTENT_LENGTH": absent},
		},
		{
			name: "4.1.2 CONTENT_LENGTH unset for unknown length",
			req: func() *http.Request {
				r := envRequest("POST", "/x", strings.NewReader("abc"))
				r.ContentLength = -1
				return r
			},
			want: map[string]string{"CONTENT_LENGTH": absent},
		},
		{
			name: "4.1.2 CONTENT_LENGTH from the field, not a header",
			req: func() *http.Request {
				r := envRequest("POST", "/x", strings.NewReader("abc"))
				r.Header.Set("Content-Length", "999")
				return r
			},
			want: map[string]string{"CONTENT_LENGTH": "3", "HTTP_CONTENT_LENGTH": absent},
		},
		{
			name: "4.1.3 CONTENT_TYPE",
			req: func() *http.Request {
				r := envRequest("POST", "/x", strings.NewReader("a=1"))
				r.Header.Set("Content-Type", "text/plain; charset=utf-8")
				return r
			},
			want: map[string]string{"CONTENT_TYPE": "text/plain; charset=utf-8", "HTTP_CONTENT_TYPE": absent},
		},
		{
			name: "4.1.3 CONTENT_TYPE unset without header",
			req:  func() *http.Request { return envRequest("POST", "/x", strings.NewReader("a=1")) },
			want: map[string]string{"CONTENT_TYPE": absent},
		},
		{
			name: "4.1.3 CONTENT_TYPE with LF dropped",
			req: func() *http.Request {
				r := envRequest("POST", "/x", strings.NewReader("a=1"))
				r.Header["Content-Type"] = []string{"text/plain\nX: y"}
				return r
			},
			want: map[string]string{"CONTENT_TYPE": absent, "HTTP_CONTENT_TYPE": absent},
		},
		{
			name: "4.1.4 GATEWAY_INTERFACE",
			req:  func() *http.Request { return envRequest("GET", "/x", nil) },
			want: map[string]string{"GATEWAY_INTERFACE": "CGI/1.1"},
		},
		{
			name:   "4.1.5 PATH_INFO decoded, 4.1.6 PATH_TRANSLATED",
			req:    func() *http.Request { return envRequest("GET", "/s.cgi/a%2Fb/%C3%A9?q", nil) },
			script: Script{Name: "/s.cgi", PathInfo: "/a/b/é", Root: "/var/www"},
			want: map[string]string{
				"PATH_INFO": "/a/b/é", "PATH_TRANSLATED": "/var/www/a/b/é", "DOCUMENT_ROOT": "/var/www",
				"REQUEST_URI": "/s.cgi/a%2Fb/%C3%A9?q",
			},
		},
		{
			name:   "4.1.5 PATH_INFO without DOCUMENT_ROOT leaves PATH_TRANSLATED unset",
			req:    func() *http.Request { return envRequest("GET", "/s.cgi/p", nil) },
			script: Script{Name: "/s.cgi", PathInfo: "/p"},
			want:   map[string]string{"PATH_INFO": "/p", "PATH_TRANSLATED": absent, "DOCUMENT_ROOT": absent},
		},
		{
			name:   "4.1.5 no PATH_INFO, no PATH_TRANSLATED",
			req:    func() *http.Request { return envRequest("GET", "/s.cgi", nil) },
			script: Script{Name: "/s.cgi", Root: "/var/www"},
			want:   map[string]string{"PATH_INFO": absent, "PATH_TRANSLATED": absent, "DOCUMENT_ROOT": "/var/www"},
		},
		{
			name: "4.1.7 QUERY_STRING raw",
			req:  func() *http.Request { return envRequest("GET", "/x?a=%20b&c=d+e&&f", nil) },
			want: map[string]string{"QUERY_STRING": "a=%20b&c=d+e&&f"},
		},
		{
			name: "4.1.7 QUERY_STRING set and empty without query",
			req:  func() *http.Request { return envRequest("GET", "/x", nil) },
			want: map[string]string{"QUERY_STRING": ""},
		},
		{
			name: "4.1.7 QUERY_STRING set and empty for a bare '?'",
			req:  func() *http.Request { return envRequest("GET", "/x?", nil) },
			want: map[string]string{"QUERY_STRING": "", "REQUEST_URI": "/x?"},
		},
		{
			name: "4.1.8 REMOTE_ADDR IPv4, 4.1.9 REMOTE_HOST, REMOTE_PORT",
			req:  func() *http.Request { return envRequest("GET", "/x", nil) },
			want: map[string]string{"REMOTE_ADDR": "198.51.100.7", "REMOTE_HOST": "198.51.100.7", "REMOTE_PORT": "54321"},
		},
		{
			name: "4.1.8 REMOTE_ADDR IPv6 without brackets",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.RemoteAddr = "[2001:db8::1]:40000"
				return r
			},
			want: map[string]string{"REMOTE_ADDR": "2001:db8::1", "REMOTE_HOST": "2001:db8::1", "REMOTE_PORT": "40000"},
		},
		{
			name: "4.1.8 REMOTE_ADDR without port",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.RemoteAddr = "192.0.2.44"
				return r
			},
			want: map[string]string{"REMOTE_ADDR": "192.0.2.44", "REMOTE_PORT": absent},
		},
		{
			name: "4.1.12 REQUEST_METHOD",
			req:  func() *http.Request { return envRequest("PROPFIND", "/x", nil) },
			want: map[string]string{"REQUEST_METHOD": "PROPFIND"},
		},
		{
			name:   "4.1.13 SCRIPT_NAME",
			req:    func() *http.Request { return envRequest("GET", "/cgi-bin/a.pl", nil) },
			script: Script{Name: "/cgi-bin/a.pl", Filename: "/srv/a.pl"},
			want:   map[string]string{"SCRIPT_NAME": "/cgi-bin/a.pl", "SCRIPT_FILENAME": "/srv/a.pl"},
		},
		{
			name: "4.1.13 SCRIPT_NAME set and empty for a script at the root",
			req:  func() *http.Request { return envRequest("GET", "/x", nil) },
			want: map[string]string{"SCRIPT_NAME": "", "SCRIPT_FILENAME": absent},
		},
		{
			name: "4.1.14 SERVER_NAME from Host, without port",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Host = "Example.ORG:8443"
				return r
			},
			want: map[string]string{"SERVER_NAME": "Example.ORG", "HTTP_HOST": "Example.ORG:8443", "SERVER_PORT": "8080"},
		},
		{
			name: "4.1.14 SERVER_NAME IPv6 literal keeps brackets",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Host = "[2001:db8::5]:8080"
				return r
			},
			want: map[string]string{"SERVER_NAME": "[2001:db8::5]", "HTTP_HOST": "[2001:db8::5]:8080"},
		},
		{
			name: "4.1.14 SERVER_NAME IPv6 literal without port",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Host = "[::1]"
				return r
			},
			want: map[string]string{"SERVER_NAME": "[::1]", "HTTP_HOST": "[::1]"},
		},
		{
			name: "4.1.14 SERVER_NAME from the local address without Host",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Host = ""
				return r
			},
			want: map[string]string{"SERVER_NAME": "203.0.113.5", "HTTP_HOST": absent},
		},
		{
			name: "4.1.14 Host header in the map does not become HTTP_HOST",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Header.Set("Host", "evil.example")
				return r
			},
			want: map[string]string{"SERVER_NAME": "www.example.com", "HTTP_HOST": "www.example.com"},
		},
		{
			name: "4.1.14 Host with LF is not used",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Host = "a\nb"
				return r
			},
			want: map[string]string{"SERVER_NAME": "203.0.113.5", "HTTP_HOST": absent},
		},
		{
			name: "4.1.15 SERVER_PORT from the local address, SERVER_ADDR",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Host = "www.example.com:9999"
				return withLocalAddr(r, &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 8081})
			},
			want: map[string]string{"SERVER_PORT": "8081", "SERVER_ADDR": "192.0.2.1"},
		},
		{
			name: "4.1.15 SERVER_ADDR IPv6 local address",
			req: func() *http.Request {
				return withLocalAddr(envRequest("GET", "/x", nil), &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 443})
			},
			want: map[string]string{"SERVER_PORT": "443", "SERVER_ADDR": "2001:db8::2"},
		},
		{
			name: "4.1.15 SERVER_PORT from Host without local address",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "/x", nil)
				r.Host = "www.example.com:8888"
				return r
			},
			want: map[string]string{"SERVER_PORT": "8888", "SERVER_ADDR": absent},
		},
		{
			name: "4.1.15 SERVER_PORT defaults to 80",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "/x", nil)
				r.Host = "www.example.com"
				return r
			},
			want: map[string]string{"SERVER_PORT": "80"},
		},
		{
			name: "4.1.15 SERVER_PORT defaults to 443 with TLS, HTTPS=on",
			req: func() *http.Request {
				r := httptest.NewRequest("GET", "https://www.example.com/x", nil)
				r.TLS = &tls.ConnectionState{HandshakeComplete: true}
				return r
			},
			want: map[string]string{"SERVER_PORT": "443", "HTTPS": "on", "REQUEST_SCHEME": "https"},
		},
		{
			name: "HTTPS unset and REQUEST_SCHEME=http without TLS",
			req:  func() *http.Request { return envRequest("GET", "/x", nil) },
			want: map[string]string{"HTTPS": absent, "REQUEST_SCHEME": "http"},
		},
		{
			name: "4.1.16 SERVER_PROTOCOL",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
				return r
			},
			want: map[string]string{"SERVER_PROTOCOL": "HTTP/2.0"},
		},
		{
			name: "4.1.16 SERVER_PROTOCOL defaults to HTTP/1.1",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Proto = ""
				return r
			},
			want: map[string]string{"SERVER_PROTOCOL": "HTTP/1.1"},
		},
		{
			name: "4.1.17 SERVER_SOFTWARE",
			req:  func() *http.Request { return envRequest("GET", "/x", nil) },
			want: map[string]string{"SERVER_SOFTWARE": "ferry/test"},
		},
		{
			name: "REQUEST_URI as sent",
			req:  func() *http.Request { return envRequest("GET", "/a/../b%2F?x=%2F", nil) },
			want: map[string]string{"REQUEST_URI": "/a/../b%2F?x=%2F", "QUERY_STRING": "x=%2F"},
		},
		{
			name: "REQUEST_URI from the URL for a client-built request",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.RequestURI = ""
				r.URL.Path, r.URL.RawQuery = "/a b", "q=1"
				return r
			},
			want: map[string]string{"REQUEST_URI": "/a%20b?q=1"},
		},
		{
			name: "4.1.18 HTTP_* upper case, '-' to '_'",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Header.Set("x-request-id", "abc")
				r.Header.Set("Accept-Language", "fr")
				return r
			},
			want: map[string]string{"HTTP_X_REQUEST_ID": "abc", "HTTP_ACCEPT_LANGUAGE": "fr"},
		},
		{
			name: "4.1.18 repeated header joined with comma",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Header.Add("X-Multi", "a")
				r.Header.Add("X-Multi", "b, c")
				r.Header.Add("X-Multi", "d")
				return r
			},
			want: map[string]string{"HTTP_X_MULTI": "a, b, c, d"},
		},
		{
			name: "4.1.18 repeated Cookie joined with semicolon",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Header.Add("Cookie", "a=1")
				r.Header.Add("Cookie", "b=2; c=3")
				return r
			},
			want: map[string]string{"HTTP_COOKIE": "a=1; b=2; c=3"},
		},
		{
			name: "4.1.18 empty header value is passed",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Header.Set("X-Empty", "")
				return r
			},
			want: map[string]string{"HTTP_X_EMPTY": ""},
		},
		{
			name: "4.1.18 underscore name dropped, cannot pose as dash name",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Header["X_Foo"] = []string{"evil"}
				r.Header.Set("X-Foo", "good")
				r.Header["X_Only"] = []string{"evil"}
				return r
			},
			want: map[string]string{"HTTP_X_FOO": "good", "HTTP_X_ONLY": absent},
		},
		{
			name: "4.1.18 non-token names dropped",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Header["X.Dot"] = []string{"1"}
				r.Header["X Space"] = []string{"1"}
				r.Header["X=Eq"] = []string{"1"}
				r.Header["Xé"] = []string{"1"}
				r.Header[""] = []string{"1"}
				return r
			},
			want: map[string]string{"HTTP_X_DOT": absent, "HTTP_X_SPACE": absent, "HTTP_X": absent, "HTTP_": absent},
		},
		{
			name: "4.1.18 values with NUL, CR or LF dropped",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Header["X-Nul"] = []string{"a\x00b"}
				r.Header["X-Cr"] = []string{"a\rb"}
				r.Header["X-Lf"] = []string{"a\nX-Injected: 1"}
				r.Header["X-Second-Bad"] = []string{"ok", "bad\n"}
				r.Header["X-Tab"] = []string{"a\tb"}
				return r
			},
			want: map[string]string{
				"HTTP_X_NUL": absent, "HTTP_X_CR": absent, "HTTP_X_LF": absent, "HTTP_X_INJECTED": absent,
				"HTTP_X_SECOND_BAD": absent, "HTTP_X_TAB": "a\tb",
			},
		},
		{
			name: "4.1.18 Authorization passed as HTTP_AUTHORIZATION",
			req: func() *http.Request {
				r := envRequest("GET", "/x", nil)
				r.Header.Set("Authorization", "Bearer t")
				return r
			},
			want: map[string]string{"HTTP_AUTHORIZATION": "Bearer t"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req()
			env, err := AppendEnv(nil, r, tt.script, "ferry/test")
			if err != nil {
				t.Fatalf("AppendEnv: %v", err)
			}
			m := envMap(t, env)
			for name, want := range tt.want {
				got, ok := m[name]
				switch {
				case want == absent && ok:
					t.Errorf("AppendEnv: %s = %q; want unset", name, got)
				case want != absent && !ok:
					t.Errorf("AppendEnv: %s unset; want %q", name, want)
				case want != absent && got != want:
					t.Errorf("AppendEnv: %s = %q; want %q", name, got, want)
				}
			}
			// Variables RFC 3875 requires on every request (§ 4.1: MUST).
			for _, name := range []string{"GATEWAY_INTERFACE", "QUERY_STRING", "REQUEST_METHOD", "SCRIPT_NAME",
				"SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE"} {
				if _, ok := m[name]; !ok {
					t.Errorf("AppendEnv: required %s unset", name)
				}
			}
		})
	}
}

// TestAppendEnvHttpoxy: the Proxy request header must never become HTTP_PROXY,
// which CGI libraries read as their outgoing proxy (httpoxy, CVE-2016-5386,
// Go issue 16405).
func TestAppendEnvHttpoxy(t *testing.T) {
	for _, key := range []string{"Proxy", "proxy", "PROXY"} {
		t.Run(key, func(t *testing.T) {
			r := envRequest("GET", "/x", nil)
			r.Header[key] = []string{"http://attacker.example:8080"}
			r.Header.Set("Proxy-Authorization", "x") // a different header, passed
			env, err := AppendEnv(nil, r, Script{}, "ferry")
			if err != nil {
				t.Fatalf("AppendEnv: %v", err)
			}
			m := envMap(t, env)
			if v, ok := m["HTTP_PROXY"]; ok {
				t.Errorf("AppendEnv with header %s: HTTP_PROXY = %q; want unset", key, v)
			}
			if got := m["HTTP_PROXY_AUTHORIZATION"]; got != "x" {
				t.Errorf("AppendEnv: HTTP_PROXY_AUTHORIZATION = %q; want %q", got, "x")
			}
		})
	}
}

// TestAppendEnvNonCanonicalDuplicateHeaders: RFC 3875 § 4.1.18 says header
// fields with the same name (compared case-insensitively) MUST become one
// variable; a hand-built http.Header may hold "x-foo" and "X-Foo" apart.
func TestAppendEnvNonCanonicalDuplicateHeaders(t *testing.T) {
	r := envRequest("GET", "/x", nil)
	r.Header["X-Foo"] = []string{"a"}
	r.Header["x-foo"] = []string{"b"}
	env, err := AppendEnv(nil, r, Script{}, "ferry")
	if err != nil {
		t.Fatalf("AppendEnv: %v", err)
	}
	var got []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "HTTP_X_FOO=") {
			got = append(got, kv)
		}
	}
	if len(got) != 1 {
		t.Errorf("AppendEnv = %q; want one HTTP_X_FOO", got)
	}
}

func TestAppendEnvInvalidMetaVariable(t *testing.T) {
	tests := []struct {
		name   string
		target string
		// split: the path is cut after this prefix, the rest is PATH_INFO
		prefix string
	}{
		{"PATH_INFO %00", "/s.cgi/a%00b", "/s.cgi"},
		{"PATH_INFO %0a", "/s.cgi/a%0ab", "/s.cgi"},
		{"PATH_INFO %0A", "/s.cgi/a%0Ab", "/s.cgi"},
		{"PATH_INFO %0d", "/s.cgi/a%0db", "/s.cgi"},
		{"PATH_INFO %0d%0a", "/s.cgi/x%0d%0aSet-Cookie:%20a=1", "/s.cgi"},
		{"SCRIPT_NAME %00", "/dir%00/s.cgi", "/dir\x00/s.cgi"},
		{"SCRIPT_NAME %0a", "/dir%0a/s.cgi/p", "/dir\n/s.cgi"},
		{"SCRIPT_NAME %0d", "/dir%0d/s.cgi", "/dir\r/s.cgi"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := envRequest("GET", tt.target, nil)
			rest, ok := strings.CutPrefix(r.URL.Path, tt.prefix)
			if !ok {
				t.Fatalf("path %q does not start with %q", r.URL.Path, tt.prefix)
			}
			dst := []string{"KEEP=1"}
			env, err := AppendEnv(dst, r, Script{Name: tt.prefix, PathInfo: rest}, "ferry")
			if !errors.Is(err, ErrInvalidMetaVariable) {
				t.Fatalf("AppendEnv(%q) error = %v; want ErrInvalidMetaVariable", tt.target, err)
			}
			if !slices.Equal(env, dst) {
				t.Errorf("AppendEnv(%q) on error = %q; want dst %q unchanged", tt.target, env, dst)
			}
		})
	}
	for _, s := range []Script{{Filename: "/srv/a\nb"}, {Root: "/srv\x00"}} {
		if _, err := AppendEnv(nil, envRequest("GET", "/", nil), s, "ferry"); !errors.Is(err, ErrInvalidMetaVariable) {
			t.Errorf("AppendEnv(%+v) error = %v; want ErrInvalidMetaVariable", s, err)
		}
	}
}

// TestAppendEnvServerNameIPv6NoHost: without a Host, SERVER_NAME comes from the
// local address, and RFC 3875 § 4.1.14 writes an IPv6 server-name in brackets.
func TestAppendEnvServerNameIPv6NoHost(t *testing.T) {
	r := envRequest("GET", "/x", nil)
	r.Host = ""
	r = withLocalAddr(r, &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 8080})
	env, err := AppendEnv(nil, r, Script{}, "ferry")
	if err != nil {
		t.Fatalf("AppendEnv: %v", err)
	}
	m := envMap(t, env)
	if got, want := m["SERVER_ADDR"], "2001:db8::2"; got != want {
		t.Errorf("AppendEnv: SERVER_ADDR = %q; want %q", got, want)
	}
	if got, want := m["SERVER_NAME"], "[2001:db8::2]"; got != want {
		t.Errorf("AppendEnv: SERVER_NAME = %q; want %q", got, want)
	}
}

func TestAppendEnvWithOrigin(t *testing.T) {
	origin := map[string]string{
		// connection variables: passed unchanged
		"REMOTE_ADDR": "10.1.2.3", "REMOTE_PORT": "61000", "REMOTE_HOST": "client.example",
		"SERVER_NAME": "front.example", "SERVER_PORT": "443", "SERVER_ADDR": "10.0.0.1",
		"HTTPS": "on", "REQUEST_SCHEME": "https", "REMOTE_USER": "alice", "AUTH_TYPE": "Basic",
		"SSL_CLIENT_S_DN": "CN=alice", "CUSTOM_PARAM": "x=y",
		// derived or per-hop: not copied
		"HTTP_X_SECRET": "leak", "HTTP_HOST": "front.example", "QUERY_STRING": "orig=1",
		"SCRIPT_NAME": "/orig.php", "PATH_INFO": "/orig", "CONTENT_LENGTH": "99", "CONTENT_TYPE": "orig/type",
		"REQUEST_METHOD": "DELETE", "REQUEST_URI": "/orig.php", "GATEWAY_INTERFACE": "CGI/9",
		"SERVER_SOFTWARE": "nginx", "DOCUMENT_ROOT": "/orig", "SCRIPT_FILENAME": "/orig.php",
		"PATH_TRANSLATED": "/orig/orig",
		// not passable
		"bad-name": "x", "1ST": "x", "X_LF": "a\nb", "X_NUL": "a\x00b",
	}
	r := envRequest("POST", "/app/run?q=2", strings.NewReader("abc"))
	r.RemoteAddr = "127.0.0.1:5555" // the hop from the front server
	r.Host = "backend.internal:9000"
	r.Header.Set("X-Hop", "1")
	r = r.WithContext(WithOrigin(r.Context(), origin))

	env, err := AppendEnv(nil, r, Script{Name: "/app", PathInfo: "/run"}, "ferry")
	if err != nil {
		t.Fatalf("AppendEnv: %v", err)
	}
	m := envMap(t, env)
	want := map[string]string{
		"REMOTE_ADDR": "10.1.2.3", "REMOTE_PORT": "61000", "REMOTE_HOST": "client.example",
		"SERVER_NAME": "front.example", "SERVER_PORT": "443", "SERVER_ADDR": "10.0.0.1",
		"HTTPS": "on", "REQUEST_SCHEME": "https", "REMOTE_USER": "alice", "AUTH_TYPE": "Basic",
		"SSL_CLIENT_S_DN": "CN=alice", "CUSTOM_PARAM": "x=y",
		"SERVER_PROTOCOL": "HTTP/1.1", // filled in: the origin lacks it
		"QUERY_STRING":    "q=2", "SCRIPT_NAME": "/app", "PATH_INFO": "/run", "CONTENT_LENGTH": "3",
		"REQUEST_METHOD": "POST", "REQUEST_URI": "/app/run?q=2", "GATEWAY_INTERFACE": "CGI/1.1",
		"SERVER_SOFTWARE": "ferry", "HTTP_HOST": "backend.internal:9000", "HTTP_X_HOP": "1",
	}
	for name, w := range want {
		if got, ok := m[name]; !ok || got != w {
			t.Errorf("AppendEnv with origin: %s = %q (set %v); want %q", name, got, ok, w)
		}
	}
	for _, name := range []string{"HTTP_X_SECRET", "CONTENT_TYPE", "DOCUMENT_ROOT", "SCRIPT_FILENAME",
		"PATH_TRANSLATED", "bad-name", "1ST", "X_LF", "X_NUL"} {
		if got, ok := m[name]; ok {
			t.Errorf("AppendEnv with origin: %s = %q; want unset", name, got)
		}
	}

	t.Run("SERVER_PROTOCOL from origin", func(t *testing.T) {
		r := envRequest("GET", "/", nil)
		r = r.WithContext(WithOrigin(r.Context(), map[string]string{"SERVER_PROTOCOL": "HTTP/2.0", "REMOTE_ADDR": "10.1.1.1"}))
		env, err := AppendEnv(nil, r, Script{}, "ferry")
		if err != nil {
			t.Fatalf("AppendEnv: %v", err)
		}
		m := envMap(t, env) // fails on a second SERVER_PROTOCOL
		if got, want := m["SERVER_PROTOCOL"], "HTTP/2.0"; got != want {
			t.Errorf("AppendEnv: SERVER_PROTOCOL = %q; want %q", got, want)
		}
	})
}

// TestAppendEnvOriginLacksRequiredVars: RFC 3875 § 4.1 makes SERVER_NAME,
// SERVER_PORT and REMOTE_ADDR mandatory; an origin that lacks them (an SCGI
// front need only send CONTENT_LENGTH and SCGI) must not make them vanish.
func TestAppendEnvOriginLacksRequiredVars(t *testing.T) {
	r := envRequest("GET", "/", nil)
	r = r.WithContext(WithOrigin(r.Context(), map[string]string{"SCGI": "1", "SSL_PROTOCOL": "TLSv1.3"}))
	env, err := AppendEnv(nil, r, Script{}, "ferry")
	if err != nil {
		t.Fatalf("AppendEnv: %v", err)
	}
	m := envMap(t, env)
	if got := m["SSL_PROTOCOL"]; got != "TLSv1.3" {
		t.Errorf("AppendEnv: SSL_PROTOCOL = %q; want %q", got, "TLSv1.3")
	}
	var missing []string
	for _, name := range []string{"SERVER_NAME", "SERVER_PORT", "REMOTE_ADDR"} {
		if _, ok := m[name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		t.Errorf("AppendEnv with partial origin: %v unset; want them derived from the request", missing)
	}
}

func TestOriginNil(t *testing.T) {
	if got := Origin(context.Background()); got != nil {
		t.Errorf("Origin(Background) = %v; want nil", got)
	}
}

// TestAppendEnvConcurrent: AppendEnv reuses pooled buffers; concurrent calls
// must not see each other's bytes (run with -race).
func TestAppendEnvConcurrent(t *testing.T) {
	const workers, rounds = 8, 200
	reqs := make([]*http.Request, workers)
	want := make([][]string, workers)
	for i := range reqs {
		r := envRequest("GET", fmt.Sprintf("/w%d?i=%d", i, i), nil)
		r.Header.Set("X-Worker", strings.Repeat(strconv.Itoa(i), 100*i+1))
		if i%2 == 0 {
			r = r.WithContext(WithOrigin(r.Context(), map[string]string{"REMOTE_ADDR": fmt.Sprintf("10.0.0.%d", i)}))
		}
		reqs[i] = r
		env, err := AppendEnv(nil, r, Script{Name: fmt.Sprintf("/w%d", i)}, "ferry")
		if err != nil {
			t.Fatalf("AppendEnv: %v", err)
		}
		want[i] = env
	}
	var wg sync.WaitGroup
	errs := make(chan string, workers)
	for i := range workers {
		wg.Go(func() {
			for range rounds {
				env, err := AppendEnv(nil, reqs[i], Script{Name: fmt.Sprintf("/w%d", i)}, "ferry")
				if err != nil || !slices.Equal(env, want[i]) {
					errs <- fmt.Sprintf("worker %d: AppendEnv = %q, %v; want %q", i, env, err, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// stringAddr is a net.Addr known only by its String, as a listener of
// another kind gives it.
type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// TestLocalTCPAddr: the server variables from a *net.TCPAddr, written
// without making it a string, are those its String gives.
func TestLocalTCPAddr(t *testing.T) {
	for _, a := range []*net.TCPAddr{
		{IP: net.ParseIP("203.0.113.5"), Port: 8080},
		{IP: net.IPv4(192, 0, 2, 1).To4(), Port: 80},
		{IP: net.ParseIP("2001:db8::2"), Port: 443},
		{IP: net.ParseIP("::ffff:192.0.2.9"), Port: 1},
		{IP: net.ParseIP("::1"), Port: 0},
		{IP: net.ParseIP("fe80::1"), Port: 8080, Zone: "eth0"},
		{Port: 8080},
	} {
		for _, host := range []string{"www.example.com", "", "bad\x7fhost"} {
			r := envRequest("GET", "/x", nil)
			r.Host = host
			got, err := AppendEnv(nil, withLocalAddr(r, a), Script{}, "ferry")
			if err != nil {
				t.Fatal(err)
			}
			want, err := AppendEnv(nil, withLocalAddr(r, stringAddr(a.String())), Script{}, "ferry")
			if err != nil {
				t.Fatal(err)
			}
			g, w := envMap(t, got), envMap(t, want)
			for _, k := range []string{"SERVER_NAME", "SERVER_ADDR", "SERVER_PORT"} {
				if g[k] != w[k] {
					t.Errorf("local %v, Host %q: %s = %q; from its String %q", a, host, k, g[k], w[k])
				}
			}
		}
	}
}
