package cgi

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ferrygw/ferry/internal/httpsyntax"
)

// FuzzReadResponse checks that ReadResponse never panics, that what it
// accepts is safe to send on, that it reads the same however the bytes
// arrive, and that the parsed response written back as a CGI header block
// parses to the same Response.
func FuzzReadResponse(f *testing.F) {
	for _, c := range goldenSeeds(f) {
		f.Add(c.output, c.nph)
	}
	f.Add([]byte("Status: 200 OK\r\nContent-Type: text/plain\r\nLocation: /x\r\n\r\nbody"), false)
	f.Fuzz(func(t *testing.T, data []byte, nph bool) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		resp, err := ReadResponse(br, nph, HeaderLimits{})
		// The same input through a larger buffer gives the same answer.
		br2 := bufio.NewReaderSize(bytes.NewReader(data), 4096)
		resp2, err2 := ReadResponse(br2, nph, HeaderLimits{})
		if (err == nil) != (err2 == nil) || (err == nil && !reflect.DeepEqual(resp, resp2)) {
			t.Fatalf("ReadResponse(%q) differs by buffer size: %+v, %v and %+v, %v", data, resp, err, resp2, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("ReadResponse(%q) error = %v; want ErrMalformedResponse", data, err)
			}
			if errors.Is(err, ErrNoResponse) && len(data) != 0 {
				t.Fatalf("ReadResponse(%q) = ErrNoResponse for %d bytes", data, len(data))
			}
			return
		}
		rest, _ := io.ReadAll(br)
		checkParsedResponse(t, data, resp, rest)
		// HeadEnd, which a group reads answers ahead with, finds the
		// header block ReadResponse read, within the same limits.
		if end, over := (HeaderLimits{}).HeadEnd(data); !nph && (over || end != len(data)-len(rest)) {
			t.Fatalf("HeadEnd(%q) = %d, %v; ReadResponse read a header block of %d bytes", data, end, over, len(data)-len(rest))
		}

		// Write it back as a CGI response (never NPH) and parse again.
		var b bytes.Buffer
		if resp.Kind != LocalRedirect { // a Status would make it a client redirect
			fmt.Fprintf(&b, "Status: %d %s\r\n", resp.Status, resp.Reason)
		}
		for _, k := range slices.Sorted(maps.Keys(resp.Header)) {
			for _, v := range resp.Header[k] {
				fmt.Fprintf(&b, "%s: %s\r\n", k, v)
			}
		}
		b.WriteString("\r\n")
		again, err := ReadResponse(bufio.NewReader(&b), false, HeaderLimits{MaxLine: 1 << 30, MaxBytes: 1 << 30, MaxFields: 1 << 30})
		if err != nil {
			t.Fatalf("ReadResponse(%q) = %+v; written back as %q it fails: %v", data, resp, b.String(), err)
		}
		if !reflect.DeepEqual(again, resp) {
			t.Fatalf("ReadResponse(%q) = %+v; written back as %q it parses as %+v", data, resp, b.String(), again)
		}
	})
}

// goldenSeeds returns the golden ReadResponse cases short enough to seed
// the fuzzers: the long-line cases add nothing the fuzzer cannot build.
func goldenSeeds(f *testing.F) []goldenCase {
	files, err := filepath.Glob(filepath.Join(responseGoldenDir, "*.txt"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no golden seeds in %s: %v", responseGoldenDir, err)
	}
	var out []goldenCase
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if c := parseGolden(f, string(data)); len(c.output) <= 1<<10 {
			out = append(out, c)
		}
	}
	return out
}

func checkParsedResponse(t *testing.T, data []byte, resp *Response, rest []byte) {
	t.Helper()
	if resp.Status < 200 || resp.Status > 599 {
		t.Fatalf("ReadResponse(%q).Status = %d; want 200 to 599", data, resp.Status)
	}
	if httpsyntax.HasCTL(resp.Reason) || resp.Reason != strings.TrimSpace(resp.Reason) {
		t.Fatalf("ReadResponse(%q).Reason = %q", data, resp.Reason)
	}
	for k, vs := range resp.Header {
		if k != textproto.CanonicalMIMEHeaderKey(k) || k == "" || strings.IndexFunc(k, func(r rune) bool { return r > 0x7f || !httpsyntax.IsTokenByte(byte(r)) }) >= 0 {
			t.Fatalf("ReadResponse(%q): header name %q not a canonical token", data, k)
		}
		if slices.Contains(hopHeaders[:], k) || k == "Status" {
			t.Fatalf("ReadResponse(%q): header %q kept", data, k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\x00\r\n") || httpsyntax.HasCTL(v) {
				t.Fatalf("ReadResponse(%q): header %s value %q holds a control byte", data, k, v)
			}
		}
	}
	switch resp.Kind {
	case Document:
		if resp.Location != "" {
			t.Fatalf("ReadResponse(%q): document with Location %q", data, resp.Location)
		}
	case LocalRedirect:
		if !strings.HasPrefix(resp.Location, "/") || strings.HasPrefix(resp.Location, "//") || resp.Status != 200 || resp.Reason != "" {
			t.Fatalf("ReadResponse(%q): local redirect %+v", data, resp)
		}
	case ClientRedirect:
		if resp.Location == "" {
			t.Fatalf("ReadResponse(%q): client redirect without Location", data)
		}
	default:
		t.Fatalf("ReadResponse(%q).Kind = %v", data, resp.Kind)
	}
	if resp.Location != "" && !slices.Equal(resp.Header["Location"], []string{resp.Location}) {
		t.Fatalf("ReadResponse(%q): Location %q but Header[Location] = %q", data, resp.Location, resp.Header["Location"])
	}
	// The body starts right after the blank line.
	head := data[:len(data)-len(rest)]
	if !bytes.Equal(data[len(head):], rest) || !(bytes.Equal(head, []byte("\n")) || bytes.Equal(head, []byte("\r\n")) ||
		bytes.HasSuffix(head, []byte("\n\n")) || bytes.HasSuffix(head, []byte("\n\r\n"))) {
		t.Fatalf("ReadResponse(%q): header block %q does not end in a blank line", data, head)
	}
}

// FuzzAppendEnv builds requests as net/http hands them over and checks the
// environment AppendEnv makes of them.
func FuzzAppendEnv(f *testing.F) {
	f.Add("GET", "/cgi-bin/x.pl", "/a/b", "q=1&r=%20", "X-Foo", "bar", "Cookie", "a=1", "192.0.2.1:1234", "example.com:8080", "", "")
	f.Add("POST", "", "", "", "Proxy", "http://evil", "X_Foo", "evil", "[2001:db8::1]:443", "[::1]:80", "SERVER_PROTOCOL", "HTTP/2.0")
	f.Add("GET", "/s", "/a%00b", "", "X-A", "a\r\nb", "Content-Type", "text/plain", "1.2.3.4", "", "REMOTE_ADDR", "10.0.0.1")
	f.Add("PUT", "/s\n", "", "", "Host", "evil", "Content-Length", "5", "", "a\x00b", "HTTP_PROXY", "x")
	f.Add("GET", "", "/x", "", "proxy", "1", "X-Foo", "", "@", "h", "bad name", "v")
	f.Add("GET", "/s", "", "", "X-A", "1", "X-B", "2", "1.2.3.4:5\n6", "h", "", "")
	f.Fuzz(func(t *testing.T, method, name, pathInfo, query, h1, v1, h2, v2, remote, host, oname, ovalue string) {
		// Preconditions net/http (and RequestFromEnv) guarantee: a token
		// method, and a query without control bytes (url.Parse refuses them).
		if !validMethod(method) || strings.IndexFunc(query, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			return
		}
		r := &http.Request{
			Method: method, URL: &url.URL{Path: name + pathInfo, RawQuery: query},
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: make(http.Header), RemoteAddr: remote, Host: host,
		}
		r.Header.Add(h1, v1)
		r.Header.Add(h2, v2)
		ctx := context.Background()
		if oname != "" {
			ctx = WithOrigin(ctx, map[string]string{oname: ovalue, "REMOTE_ADDR": "10.9.9.9"})
		}
		r = r.WithContext(ctx)
		s := Script{Name: name, PathInfo: pathInfo, Filename: "/srv" + name, Root: "/srv/www"}
		env, err := AppendEnv([]string{"PATH=/bin"}, r, s, "ferry")
		if err != nil {
			if !errors.Is(err, ErrInvalidMetaVariable) || !hasCTL(name+pathInfo) {
				t.Fatalf("AppendEnv(name %q, path %q) error = %v", name, pathInfo, err)
			}
			return
		}
		if hasCTL(name + pathInfo) {
			t.Fatalf("AppendEnv(name %q, path %q) = nil error; want ErrInvalidMetaVariable", name, pathInfo)
		}
		seen := make(map[string]bool)
		for _, kv := range env {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || !validVarName(k) {
				t.Fatalf("AppendEnv: entry %q is not NAME=VALUE", kv)
			}
			if seen[k] {
				t.Fatalf("AppendEnv: %s given twice in %q", k, env)
			}
			seen[k] = true
			if hasCTL(v) {
				t.Fatalf("AppendEnv: %s=%q holds NUL, CR or LF", k, v)
			}
			if k == "HTTP_PROXY" {
				t.Fatalf("AppendEnv: HTTP_PROXY=%q (httpoxy)", v)
			}
		}
		for _, k := range []string{"GATEWAY_INTERFACE", "REQUEST_METHOD", "QUERY_STRING", "SCRIPT_NAME", "SERVER_PROTOCOL", "SERVER_SOFTWARE"} {
			if !seen[k] {
				t.Fatalf("AppendEnv: %s missing from %q", k, env)
			}
		}
	})
}

// FuzzRequestFromEnv checks that RequestFromEnv never panics and that what it
// accepts is a request a handler can rely on.
func FuzzRequestFromEnv(f *testing.F) {
	f.Add("GET", "/a/b?c=d", "/a", "/b", "c=d", "", "HTTP/1.1", "on", "HTTP_X_FOO", "bar", "192.0.2.1", "1234")
	f.Add("POST", "", "/cgi-bin/x", "/p q", "a=1", "5", "HTTP/1.0", "", "HTTP_PROXY", "http://evil", "::1", "80")
	f.Add("GET", "", "", "", "a=1", "-1", "INCLUDED", "off", "HTTP_", "x", "", "")
	f.Add("OPTIONS", "*", "", "", "", "0", "HTTP/2.0", "1", "HTTP_HOST", "h:1", "a\nb", "")
	f.Add("GET", "http://h", "", "", "", "", "HTTP/9.9", "", "HTTP_Proxy", "x", "1.2.3.4", "x")
	f.Fuzz(func(t *testing.T, method, uri, scriptName, pathInfo, query, length, proto, https, xname, xvalue, raddr, rport string) {
		vars := map[string]string{
			"REQUEST_METHOD": method, "REQUEST_URI": uri, "SCRIPT_NAME": scriptName, "PATH_INFO": pathInfo,
			"QUERY_STRING": query, "CONTENT_LENGTH": length, "SERVER_PROTOCOL": proto, "HTTPS": https,
			"REMOTE_ADDR": raddr, "REMOTE_PORT": rport, "SERVER_NAME": "example.com", "SERVER_PORT": "8080",
		}
		vars[xname] = xvalue
		for k, v := range vars {
			if v == "" {
				delete(vars, k)
			}
		}
		r, err := RequestFromEnv(context.Background(), vars)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "cgi: ") {
				t.Fatalf("RequestFromEnv error %q lacks the package prefix", err)
			}
			return
		}
		if !validMethod(r.Method) || r.Method != vars["REQUEST_METHOD"] {
			t.Fatalf("RequestFromEnv(%q).Method = %q", vars, r.Method)
		}
		if !strings.HasPrefix(r.URL.Path, "/") {
			switch {
			case vars["REQUEST_URI"] == "*" && r.URL.Path == "*":
				// "OPTIONS *" (RFC 9112 § 3.2.4), as net/http gives it.
			case r.URL.IsAbs() && r.URL.Path == "":
				// absolute-form with no path, as net/http gives it.
			default:
				t.Fatalf("RequestFromEnv(%q).URL.Path = %q; want it to start with /", vars, r.URL.Path)
			}
		}
		if r.ContentLength < 0 {
			t.Fatalf("RequestFromEnv(%q).ContentLength = %d", vars, r.ContentLength)
		}
		if r.Body != nil {
			t.Fatalf("RequestFromEnv(%q).Body = %v; want nil", vars, r.Body)
		}
		if r.ProtoMajor < 0 || r.ProtoMinor < 0 || !strings.HasPrefix(r.Proto, "HTTP/") && r.Proto != "INCLUDED" {
			t.Fatalf("RequestFromEnv(%q).Proto = %q", vars, r.Proto)
		}
		for k, vs := range r.Header {
			if strings.EqualFold(k, "Proxy") {
				t.Fatalf("RequestFromEnv(%q): Proxy header %q (httpoxy)", vars, vs)
			}
			for _, v := range vs {
				if hasCTL(v) {
					t.Fatalf("RequestFromEnv(%q): header %s value %q holds NUL, CR or LF", vars, k, v)
				}
			}
		}
		if !maps.Equal(Origin(r.Context()), vars) {
			t.Fatalf("Origin(RequestFromEnv(vars)) = %q; want vars", Origin(r.Context()))
		}
	})
}
