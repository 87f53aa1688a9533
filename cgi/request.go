package cgi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ferrygw/ferry/internal/httpsyntax"
)

// ErrMissingMetaVariable is wrapped by [RequestFromEnv] errors for a
// required meta-variable that is absent.
var ErrMissingMetaVariable = errors.New("cgi: required meta-variable missing")

// RequestFromEnv builds a server-side [*http.Request] from the meta-variables
// a web server sent (RFC 3875 § 4.1): by CGI environment, FastCGI PARAMS or
// SCGI headers. The request's Body is left nil for the caller to set;
// ContentLength comes from CONTENT_LENGTH.
//
// The URL is REQUEST_URI when present, else SCRIPT_NAME, PATH_INFO and
// QUERY_STRING; then each of SCRIPT_NAME and PATH_INFO must be empty or start
// with "/". Headers come from HTTP_* variables ('_' becomes '-'), Host
// from HTTP_HOST or SERVER_NAME, RemoteAddr from REMOTE_ADDR and REMOTE_PORT,
// and a non-nil TLS from HTTPS=on. The request's context, derived from ctx,
// records vars through [WithOrigin], so that a script ferry runs next sees
// what the web server said about the connection.
func RequestFromEnv(ctx context.Context, vars map[string]string) (*http.Request, error) {
	method := vars["REQUEST_METHOD"]
	if method == "" {
		return nil, fmt.Errorf("%w: REQUEST_METHOD", ErrMissingMetaVariable)
	}
	if !validMethod(method) {
		return nil, fmt.Errorf("cgi: bad REQUEST_METHOD %.32q", method)
	}
	proto := vars["SERVER_PROTOCOL"]
	if proto == "" || strings.EqualFold(proto, "INCLUDED") {
		proto = "HTTP/1.0"
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		return nil, fmt.Errorf("cgi: bad SERVER_PROTOCOL %.32q", proto)
	}

	uri := vars["REQUEST_URI"]
	if uri == "" {
		// Each is empty or starts with "/" (RFC 3875 §§ 4.1.5, 4.1.13);
		// "a" and "b" would make the request's path a relative "ab".
		script, info := vars["SCRIPT_NAME"], vars["PATH_INFO"]
		if script != "" && script[0] != '/' {
			return nil, fmt.Errorf("cgi: bad SCRIPT_NAME %.64q: neither empty nor starting with /", script)
		}
		if info != "" && info[0] != '/' {
			return nil, fmt.Errorf("cgi: bad PATH_INFO %.64q: neither empty nor starting with /", info)
		}
		uri = (&url.URL{Path: script + info}).EscapedPath()
		if uri == "" {
			uri = "/"
		}
		if q := vars["QUERY_STRING"]; q != "" {
			uri += "?" + q
		}
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return nil, fmt.Errorf("cgi: bad request URI %.64q: %w", uri, err)
	}

	n := 2 // the headers at most: Content-Length, Content-Type, HTTP_*
	for k := range vars {
		if strings.HasPrefix(k, "HTTP_") {
			n++
		}
	}
	// Each header's one value is a slice of one list, as net/http's
	// server does: not one allocation per header.
	values := make([]string, n)
	one := func(v string) []string {
		n--
		values[n] = v
		return values[n : n+1 : n+1]
	}
	// r stays on this stack: WithContext below makes the one the caller
	// gets.
	r := http.Request{
		Method:     method,
		URL:        u,
		Proto:      proto,
		ProtoMajor: major,
		ProtoMinor: minor,
		Header:     make(http.Header, n),
		RequestURI: uri,
		Host:       vars["HTTP_HOST"],
	}
	if r.Host == "" {
		r.Host = vars["SERVER_NAME"]
		if p := vars["SERVER_PORT"]; p != "" && r.Host != "" && p != "80" && p != "443" {
			r.Host = net.JoinHostPort(strings.Trim(r.Host, "[]"), p)
		}
	}
	if cl := vars["CONTENT_LENGTH"]; cl != "" {
		length, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || length < 0 || !isDigits(cl) {
			return nil, fmt.Errorf("cgi: bad CONTENT_LENGTH %.32q", cl)
		}
		r.ContentLength = length
		r.Header["Content-Length"] = one(cl)
	}
	if ct := vars["CONTENT_TYPE"]; ct != "" && !hasCTL(ct) {
		r.Header["Content-Type"] = one(ct)
	}
	for k, v := range vars {
		name, ok := strings.CutPrefix(k, "HTTP_")
		// PROXY in any case: httpoxy, Go issue 16405.
		if !ok || name == "" || strings.EqualFold(name, "HOST") || strings.EqualFold(name, "PROXY") || hasCTL(v) ||
			strings.EqualFold(name, "CONTENT_LENGTH") || strings.EqualFold(name, "CONTENT_TYPE") || !validVarName(name) {
			continue
		}
		key := headerName(name)
		if _, dup := r.Header[key]; dup {
			r.Header[key] = append(r.Header[key], v) // HTTP_X_A and HTTP_x_a
			continue
		}
		r.Header[key] = one(v)
	}
	if addr := vars["REMOTE_ADDR"]; addr != "" {
		if port := vars["REMOTE_PORT"]; port != "" {
			r.RemoteAddr = net.JoinHostPort(addr, port)
		} else {
			r.RemoteAddr = addr
		}
	}
	if strings.EqualFold(vars["HTTPS"], "on") || vars["HTTPS"] == "1" {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true, ServerName: vars["SERVER_NAME"]}
	}
	return r.WithContext(WithOrigin(ctx, vars)), nil
}

// commonHeaders are the canonical names of the headers most requests
// carry, by their meta-variable's name after HTTP_: a request's header
// names need no allocation of their own.
var commonHeaders = func() map[string]string {
	m := make(map[string]string)
	for _, h := range []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language",
		"Authorization", "Cache-Control", "Connection", "Cookie", "Dnt", "Forwarded", "If-Match",
		"If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since", "Origin", "Pragma",
		"Priority", "Range", "Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Te", "Upgrade",
		"Upgrade-Insecure-Requests", "User-Agent", "Via", "X-Forwarded-For", "X-Forwarded-Host",
		"X-Forwarded-Port", "X-Forwarded-Prefix", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id",
		"X-Requested-With"} {
		m[strings.ToUpper(strings.ReplaceAll(h, "-", "_"))] = h
	}
	return m
}()

// headerName turns "X_FORWARDED_FOR" (or "x_forwarded_for") into
// "X-Forwarded-For".
func headerName(v string) string {
	if h, ok := commonHeaders[v]; ok {
		return h
	}
	b := []byte(v)
	upper := true
	for i, c := range b {
		switch {
		case c == '_':
			b[i], upper = '-', true
		case upper:
			upper = false
			if 'a' <= c && c <= 'z' {
				b[i] = c - ('a' - 'A') // HTTP_x_a is X-A, as textproto has it
			}
		case 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpsyntax.IsTokenByte(m[i]) {
			return false
		}
	}
	return m != ""
}
