package cgi

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// baseEnv is a complete environment as a web server sends it.
func baseEnv() map[string]string {
	return map[string]string{
		"GATEWAY_INTERFACE":    "CGI/1.1",
		"SERVER_SOFTWARE":      "nginx/1.27",
		"REQUEST_METHOD":       "POST",
		"SERVER_PROTOCOL":      "HTTP/1.1",
		"REQUEST_URI":          "/app/run/x%20y?a=1&b=%2F",
		"SCRIPT_NAME":          "/app",
		"PATH_INFO":            "/run/x y",
		"QUERY_STRING":         "a=1&b=%2F",
		"SERVER_NAME":          "www.example.com",
		"SERVER_PORT":          "443",
		"REMOTE_ADDR":          "198.51.100.7",
		"REMOTE_PORT":          "54321",
		"CONTENT_LENGTH":       "11",
		"CONTENT_TYPE":         "application/json",
		"HTTPS":                "on",
		"HTTP_HOST":            "www.example.com",
		"HTTP_USER_AGENT":      "curl/8",
		"HTTP_X_FORWARDED_FOR": "192.0.2.1",
		"HTTP_ACCEPT":          "*/*",
	}
}

func TestRequestFromEnv(t *testing.T) {
	tests := []struct {
		name string
		edit map[string]string // "" deletes the variable
		// checks
		method     string
		path       string
		rawQuery   string
		requestURI string
		host       string
		remoteAddr string
		length     string      // ContentLength, formatted
		header     http.Header // values that must be present
		noHeader   []string    // header names that must be absent
		tls        string      // "yes" or "no"
		proto      string
	}{
		{
			name: "full", method: "POST", path: "/app/run/x y", rawQuery: "a=1&b=%2F",
			requestURI: "/app/run/x%20y?a=1&b=%2F", host: "www.example.com", remoteAddr: "198.51.100.7:54321",
			length: "11", tls: "yes", proto: "HTTP/1.1",
			header: http.Header{
				"Content-Type": {"application/json"}, "Content-Length": {"11"}, "User-Agent": {"curl/8"},
				"X-Forwarded-For": {"192.0.2.1"}, "Accept": {"*/*"},
			},
			noHeader: []string{"Host"},
		},
		{
			name:   "no REQUEST_URI: SCRIPT_NAME + PATH_INFO + QUERY_STRING",
			edit:   map[string]string{"REQUEST_URI": ""},
			method: "POST", path: "/app/run/x y", rawQuery: "a=1&b=%2F", requestURI: "/app/run/x%20y?a=1&b=%2F",
		},
		{
			name:   "no REQUEST_URI, no QUERY_STRING",
			edit:   map[string]string{"REQUEST_URI": "", "QUERY_STRING": ""},
			method: "POST", path: "/app/run/x y", rawQuery: "", requestURI: "/app/run/x%20y",
		},
		{
			name:   "no REQUEST_URI, SCRIPT_NAME only",
			edit:   map[string]string{"REQUEST_URI": "", "PATH_INFO": "", "QUERY_STRING": ""},
			method: "POST", path: "/app", requestURI: "/app",
		},
		{
			name:   "REQUEST_URI wins over SCRIPT_NAME + PATH_INFO",
			edit:   map[string]string{"REQUEST_URI": "/rewritten?z=9"},
			method: "POST", path: "/rewritten", rawQuery: "z=9", requestURI: "/rewritten?z=9",
		},
		{
			name:   "nothing about the URL gives /",
			edit:   map[string]string{"REQUEST_URI": "", "SCRIPT_NAME": "", "PATH_INFO": "", "QUERY_STRING": ""},
			method: "POST", path: "/", requestURI: "/",
		},
		{
			name:   "GET without body",
			edit:   map[string]string{"REQUEST_METHOD": "GET", "CONTENT_LENGTH": "", "CONTENT_TYPE": ""},
			method: "GET", length: "0", noHeader: []string{"Content-Length", "Content-Type"},
		},
		{
			name:   "CONTENT_LENGTH 0",
			edit:   map[string]string{"CONTENT_LENGTH": "0"},
			length: "0", header: http.Header{"Content-Length": {"0"}},
		},
		{
			name:   "HTTP_CONTENT_* ignored",
			edit:   map[string]string{"HTTP_CONTENT_LENGTH": "999", "HTTP_CONTENT_TYPE": "evil/x"},
			length: "11", header: http.Header{"Content-Length": {"11"}, "Content-Type": {"application/json"}},
		},
		{
			name:     "HTTP_PROXY is not turned into a Proxy header (httpoxy)",
			edit:     map[string]string{"HTTP_PROXY": "http://attacker.example"},
			noHeader: []string{"Proxy"},
		},
		{
			name:   "HTTP_* names to canonical headers",
			edit:   map[string]string{"HTTP_X_REQUEST_ID": "r1", "HTTP_DNT": "1", "HTTP_SEC_CH_UA": "x"},
			header: http.Header{"X-Request-Id": {"r1"}, "Dnt": {"1"}, "Sec-Ch-Ua": {"x"}},
		},
		{
			name:     "HTTP_* value with LF dropped",
			edit:     map[string]string{"HTTP_X_BAD": "a\r\nInjected: 1"},
			noHeader: []string{"X-Bad", "Injected"},
		},
		{
			name: "Host from SERVER_NAME and SERVER_PORT",
			edit: map[string]string{"HTTP_HOST": "", "SERVER_NAME": "srv.example", "SERVER_PORT": "8080"},
			host: "srv.example:8080",
		},
		{
			name: "Host from SERVER_NAME, default port left out",
			edit: map[string]string{"HTTP_HOST": "", "SERVER_NAME": "srv.example", "SERVER_PORT": "443"},
			host: "srv.example",
		},
		{
			name: "Host from IPv6 SERVER_NAME",
			edit: map[string]string{"HTTP_HOST": "", "SERVER_NAME": "[2001:db8::1]", "SERVER_PORT": "8080"},
			host: "[2001:db8::1]:8080",
		},
		{
			name:       "RemoteAddr IPv6",
			edit:       map[string]string{"REMOTE_ADDR": "2001:db8::7", "REMOTE_PORT": "1234"},
			remoteAddr: "[2001:db8::7]:1234",
		},
		{
			name:       "RemoteAddr without REMOTE_PORT",
			edit:       map[string]string{"REMOTE_PORT": ""},
			remoteAddr: "198.51.100.7",
		},
		{name: "HTTPS=ON", edit: map[string]string{"HTTPS": "ON"}, tls: "yes"},
		{name: "HTTPS=1", edit: map[string]string{"HTTPS": "1"}, tls: "yes"},
		{name: "HTTPS=off", edit: map[string]string{"HTTPS": "off"}, tls: "no"},
		{name: "no HTTPS", edit: map[string]string{"HTTPS": ""}, tls: "no"},
		{
			name:  "SERVER_PROTOCOL INCLUDED",
			edit:  map[string]string{"SERVER_PROTOCOL": "INCLUDED"},
			proto: "HTTP/1.0",
		},
		{
			name:  "SERVER_PROTOCOL missing",
			edit:  map[string]string{"SERVER_PROTOCOL": ""},
			proto: "HTTP/1.0",
		},
		{
			name:  "SERVER_PROTOCOL HTTP/2.0",
			edit:  map[string]string{"SERVER_PROTOCOL": "HTTP/2.0"},
			proto: "HTTP/2.0",
		},
		{
			name:   "extension method",
			edit:   map[string]string{"REQUEST_METHOD": "PROPFIND"},
			method: "PROPFIND",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv()
			for k, v := range tt.edit {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			r, err := RequestFromEnv(context.Background(), env)
			if err != nil {
				t.Fatalf("RequestFromEnv: %v", err)
			}
			check := func(what, got, want string) {
				t.Helper()
				if want != "" && got != want {
					t.Errorf("RequestFromEnv: %s = %q; want %q", what, got, want)
				}
			}
			check("Method", r.Method, tt.method)
			check("URL.Path", r.URL.Path, tt.path)
			if tt.path != "" && r.URL.RawQuery != tt.rawQuery {
				t.Errorf("RequestFromEnv: URL.RawQuery = %q; want %q", r.URL.RawQuery, tt.rawQuery)
			}
			check("RequestURI", r.RequestURI, tt.requestURI)
			check("Host", r.Host, tt.host)
			check("RemoteAddr", r.RemoteAddr, tt.remoteAddr)
			check("Proto", r.Proto, tt.proto)
			check("ContentLength", strconv.FormatInt(r.ContentLength, 10), tt.length)
			for k, vs := range tt.header {
				if got := r.Header[k]; !reflect.DeepEqual(got, vs) {
					t.Errorf("RequestFromEnv: Header[%q] = %q; want %q", k, got, vs)
				}
			}
			for _, k := range tt.noHeader {
				if got, ok := r.Header[k]; ok {
					t.Errorf("RequestFromEnv: Header[%q] = %q; want absent", k, got)
				}
			}
			if got := r.TLS != nil; tt.tls != "" && got != (tt.tls == "yes") {
				t.Errorf("RequestFromEnv: TLS set = %v; want %v", got, !got)
			}
			if r.Body != nil {
				t.Errorf("RequestFromEnv: Body = %v; want nil for the caller to set", r.Body)
			}
			if got := Origin(r.Context()); !maps.Equal(got, env) {
				t.Errorf("Origin(RequestFromEnv(env).Context()) = %v; want env", got)
			}
		})
	}
}

func TestRequestFromEnvErrors(t *testing.T) {
	tests := []struct {
		name    string
		edit    map[string]string
		missing bool   // wraps ErrMissingMetaVariable
		substr  string // in the message
	}{
		{"missing REQUEST_METHOD", map[string]string{"REQUEST_METHOD": ""}, true, "REQUEST_METHOD"},
		{"REQUEST_METHOD with space", map[string]string{"REQUEST_METHOD": "GET X"}, false, "bad REQUEST_METHOD"},
		{"REQUEST_METHOD with LF", map[string]string{"REQUEST_METHOD": "GET\n"}, false, "bad REQUEST_METHOD"},
		{"REQUEST_METHOD with NUL", map[string]string{"REQUEST_METHOD": "G\x00T"}, false, "bad REQUEST_METHOD"},
		{"REQUEST_METHOD with '('", map[string]string{"REQUEST_METHOD": "GET()"}, false, "bad REQUEST_METHOD"},
		{"CONTENT_LENGTH -1", map[string]string{"CONTENT_LENGTH": "-1"}, false, "bad CONTENT_LENGTH"},
		{"CONTENT_LENGTH 1e3", map[string]string{"CONTENT_LENGTH": "1e3"}, false, "bad CONTENT_LENGTH"},
		{"CONTENT_LENGTH +5", map[string]string{"CONTENT_LENGTH": "+5"}, false, "bad CONTENT_LENGTH"},
		{"CONTENT_LENGTH space", map[string]string{"CONTENT_LENGTH": " 5"}, false, "bad CONTENT_LENGTH"},
		{"CONTENT_LENGTH hex", map[string]string{"CONTENT_LENGTH": "0x10"}, false, "bad CONTENT_LENGTH"},
		{"CONTENT_LENGTH overflow", map[string]string{"CONTENT_LENGTH": "99999999999999999999"}, false, "bad CONTENT_LENGTH"},
		{"SERVER_PROTOCOL garbage", map[string]string{"SERVER_PROTOCOL": "FOO/1.0"}, false, "bad SERVER_PROTOCOL"},
		{"SERVER_PROTOCOL no version", map[string]string{"SERVER_PROTOCOL": "HTTP/"}, false, "bad SERVER_PROTOCOL"},
		{"SERVER_PROTOCOL letters", map[string]string{"SERVER_PROTOCOL": "HTTP/a.b"}, false, "bad SERVER_PROTOCOL"},
		{"REQUEST_URI relative", map[string]string{"REQUEST_URI": "app/run"}, false, "bad request URI"},
		{"REQUEST_URI with LF", map[string]string{"REQUEST_URI": "/a\nb"}, false, "bad request URI"},
		{"REQUEST_URI with NUL", map[string]string{"REQUEST_URI": "/a\x00b"}, false, "bad request URI"},
		{"SCRIPT_NAME relative", map[string]string{"REQUEST_URI": "", "SCRIPT_NAME": "cgi-bin/x"}, false, "bad SCRIPT_NAME"},
		{"PATH_INFO relative", map[string]string{"REQUEST_URI": "", "PATH_INFO": "*"}, false, "bad PATH_INFO"},
		{"PATH_INFO relative, no SCRIPT_NAME", map[string]string{"REQUEST_URI": "", "SCRIPT_NAME": "", "PATH_INFO": "x/y"}, false, "bad PATH_INFO"},
		{"QUERY_STRING with LF", map[string]string{"REQUEST_URI": "", "QUERY_STRING": "a\nb"}, false, "bad request URI"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := baseEnv()
			for k, v := range tt.edit {
				if v == "" {
					delete(env, k)
				} else {
					env[k] = v
				}
			}
			r, err := RequestFromEnv(context.Background(), env)
			if err == nil {
				t.Fatalf("RequestFromEnv(%q) = %s %s; want error", tt.edit, r.Method, r.URL)
			}
			if got := errors.Is(err, ErrMissingMetaVariable); got != tt.missing {
				t.Errorf("RequestFromEnv(%q) error %q: Is(ErrMissingMetaVariable) = %v; want %v", tt.edit, err, got, tt.missing)
			}
			if !strings.Contains(err.Error(), tt.substr) || !strings.HasPrefix(err.Error(), "cgi: ") {
				t.Errorf("RequestFromEnv(%q) error = %q; want \"cgi: ...%s...\"", tt.edit, err, tt.substr)
			}
		})
	}
}

// TestRequestFromEnvQueryWithoutPath: a script mounted at the root may get an
// empty SCRIPT_NAME (RFC 3875 § 4.1.13) and no PATH_INFO; with no REQUEST_URI
// the query alone must still give a request for "/?query".
func TestRequestFromEnvQueryWithoutPath(t *testing.T) {
	env := map[string]string{"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "QUERY_STRING": "a=1"}
	r, err := RequestFromEnv(context.Background(), env)
	if err != nil {
		t.Fatalf("RequestFromEnv(%q): %v", env, err)
	}
	if r.URL.Path != "/" || r.URL.RawQuery != "a=1" {
		t.Errorf("RequestFromEnv(%q).URL = %q; want %q", env, r.URL, "/?a=1")
	}
}

// TestRequestFromEnvHttpoxyCase: the httpoxy guard must not depend on the
// case of the variable name ("HTTP_Proxy" from a FastCGI front is still the
// Proxy header).
func TestRequestFromEnvHttpoxyCase(t *testing.T) {
	for _, name := range []string{"HTTP_PROXY", "HTTP_Proxy", "HTTP_proxy"} {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{"REQUEST_METHOD": "GET", name: "http://attacker.example"}
			r, err := RequestFromEnv(context.Background(), env)
			if err != nil {
				t.Fatalf("RequestFromEnv: %v", err)
			}
			if got, ok := r.Header["Proxy"]; ok {
				if name != "HTTP_PROXY" {
				}
				t.Errorf("RequestFromEnv(%s=...): Header[Proxy] = %q; want absent", name, got)
			}
		})
	}
}

func TestRequestFromEnvOriginFeedsAppendEnv(t *testing.T) {
	// A request that came in by FastCGI or SCGI keeps what the front server
	// said about the connection when it runs a CGI script next.
	r, err := RequestFromEnv(context.Background(), baseEnv())
	if err != nil {
		t.Fatalf("RequestFromEnv: %v", err)
	}
	env, err := AppendEnv(nil, r, Script{Name: "/app", PathInfo: "/run/x y"}, "ferry")
	if err != nil {
		t.Fatalf("AppendEnv: %v", err)
	}
	m := envMap(t, env)
	for _, name := range []string{"REMOTE_ADDR", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT", "HTTPS", "SERVER_PROTOCOL"} {
		if got, want := m[name], baseEnv()[name]; got != want {
			t.Errorf("AppendEnv(RequestFromEnv(env)): %s = %q; want %q", name, got, want)
		}
	}
	if got, want := m["SERVER_SOFTWARE"], "ferry"; got != want {
		t.Errorf("AppendEnv(RequestFromEnv(env)): SERVER_SOFTWARE = %q; want %q", got, want)
	}
}

// TestEnvRoundTrip: AppendEnv then RequestFromEnv gives back the request.
func TestEnvRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		method string
		target string
		body   string
		script Script
		remote string
		header http.Header
	}{
		{
			name: "GET with query", method: "GET", target: "/cgi-bin/a.pl/p/q?x=1&y=%2F+z",
			script: Script{Name: "/cgi-bin/a.pl", PathInfo: "/p/q"}, remote: "192.0.2.1:1111",
			header: http.Header{"Accept": {"text/html"}, "X-Request-Id": {"abc"}},
		},
		{
			name: "POST with body", method: "POST", target: "/submit", body: "a=1&b=2",
			script: Script{Name: "/submit"}, remote: "192.0.2.1:2222",
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Cookie": {"s=1; t=2"}},
		},
		{
			name: "escaped path", method: "GET", target: "/a%20b/%C3%A9?",
			script: Script{Name: "", PathInfo: "/a b/é"}, remote: "[2001:db8::9]:3333",
		},
		{
			name: "extension method", method: "MKCOL", target: "/dav/new/",
			script: Script{Name: "/dav", PathInfo: "/new/"}, remote: "10.0.0.1:4444",
			header: http.Header{"Depth": {"1"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			var r *http.Request
			if body != nil {
				r = envRequest(tt.method, tt.target, body)
			} else {
				r = envRequest(tt.method, tt.target, nil)
			}
			r.RemoteAddr = tt.remote
			maps.Copy(r.Header, tt.header)
			env, err := AppendEnv(nil, r, tt.script, "ferry")
			if err != nil {
				t.Fatalf("AppendEnv: %v", err)
			}
			back, err := RequestFromEnv(context.Background(), envMap(t, env))
			if err != nil {
				t.Fatalf("RequestFromEnv(AppendEnv(r)): %v", err)
			}
			if back.Method != r.Method {
				t.Errorf("round trip Method = %q; want %q", back.Method, r.Method)
			}
			if back.URL.String() != r.URL.String() {
				t.Errorf("round trip URL = %q; want %q", back.URL, r.URL)
			}
			if back.URL.Path != r.URL.Path || back.URL.RawQuery != r.URL.RawQuery {
				t.Errorf("round trip URL path, query = %q, %q; want %q, %q", back.URL.Path, back.URL.RawQuery, r.URL.Path, r.URL.RawQuery)
			}
			if back.RequestURI != r.RequestURI {
				t.Errorf("round trip RequestURI = %q; want %q", back.RequestURI, r.RequestURI)
			}
			if back.Host != r.Host {
				t.Errorf("round trip Host = %q; want %q", back.Host, r.Host)
			}
			if back.RemoteAddr != r.RemoteAddr {
				t.Errorf("round trip RemoteAddr = %q; want %q", back.RemoteAddr, r.RemoteAddr)
			}
			if back.ContentLength != r.ContentLength {
				t.Errorf("round trip ContentLength = %d; want %d", back.ContentLength, r.ContentLength)
			}
			want := r.Header.Clone()
			if r.ContentLength > 0 {
				want.Set("Content-Length", back.Header.Get("Content-Length"))
				if got := back.Header.Get("Content-Length"); got != "7" {
					t.Errorf("round trip Content-Length header = %q; want %q", got, "7")
				}
			}
			if !reflect.DeepEqual(back.Header, want) {
				t.Errorf("round trip Header = %v; want %v", back.Header, want)
			}
		})
	}
}

// TestRequestFromEnvHeaderValues: the header values share one list, but
// each header's is its own: appending to one changes no other, and two
// variables that name one header (HTTP_X_A, HTTP_x_a) give it both values.
func TestRequestFromEnvHeaderValues(t *testing.T) {
	env := baseEnv()
	env["HTTP_X_A"], env["HTTP_x_a"], env["HTTP_user_agent"] = "1", "2", "ua"
	r, err := RequestFromEnv(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(slices.Values(r.Header["X-A"])); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("X-A = %q; want both values", got)
	}
	if got := slices.Sorted(slices.Values(r.Header["User-Agent"])); !slices.Equal(got, []string{"curl/8", "ua"}) {
		t.Errorf("User-Agent = %q; want both values", got)
	}
	before := maps.Clone(r.Header)
	for k := range before {
		before[k] = slices.Clone(before[k])
	}
	for k := range r.Header {
		r.Header[k] = append(r.Header[k], "appended to "+k)
	}
	for k, vs := range r.Header {
		want := append(slices.Clone(before[k]), "appended to "+k)
		if !slices.Equal(vs, want) {
			t.Errorf("after appending to every header, %s = %q; want %q", k, vs, want)
		}
	}
}
