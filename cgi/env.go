package cgi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Script says which script a request runs and how its URL path splits into
// SCRIPT_NAME and PATH_INFO (RFC 3875 § 4.1.13 and § 4.1.5).
type Script struct {
	// Name is SCRIPT_NAME: the URL path that names the script, not
	// percent-encoded, such as "/cgi-bin/env.pl". Empty is allowed (a script
	// mounted at the root).
	Name string
	// PathInfo is PATH_INFO: the decoded rest of the URL path after Name,
	// empty or starting with "/". When empty, PATH_INFO and PATH_TRANSLATED are
	// not set.
	PathInfo string
	// Filename is SCRIPT_FILENAME, the script's absolute file path. Empty
	// leaves SCRIPT_FILENAME unset.
	Filename string
	// Root is DOCUMENT_ROOT; PATH_TRANSLATED is Root joined with PathInfo. Empty
	// leaves both unset.
	Root string
}

// ErrInvalidMetaVariable reports a meta-variable value that cannot be passed
// to a script: it holds a NUL, CR or LF byte (from a decoded %00, %0d or %0a).
// It is a [*StatusError]: a gateway answers such a request with 400 Bad
// Request.
var ErrInvalidMetaVariable error = &StatusError{Status: http.StatusBadRequest, Err: errors.New("cgi: meta-variable value contains NUL, CR or LF")}

// ErrEnvTooLarge reports an environment too large to give a script: its
// variables together, with what execve counts for each (a pointer and the
// final NUL), over MaxEnvBytes, or one variable over MaxEnvVarBytes. The
// request's headers made it so. It is a [*StatusError]: a gateway answers
// 431 Request Header Fields Too Large, as it would for the headers
// themselves, rather than let execve fail with E2BIG ("argument list too
// long").
var ErrEnvTooLarge error = &StatusError{Status: http.StatusRequestHeaderFieldsTooLarge, Err: errors.New("cgi: environment too large for a script")}

// Bounds of the environment AppendEnv builds. Linux's execve takes at most
// a quarter of the stack limit (2 MiB by default) for the arguments and the
// environment together, and 128 KiB (MAX_ARG_STRLEN) for one string:
// MaxEnvBytes leaves half of the first to the script's arguments and
// anything else.
const (
	MaxEnvBytes    = 1 << 20
	MaxEnvVarBytes = 128<<10 - 1
)

// envOverhead is what execve counts for a variable beyond its bytes: its
// pointer and its NUL.
const envOverhead = 9

// derivedVars are computed for every hop from the request and the script, so an
// origin's values for them are not copied.
var derivedVars = [...]string{
	"CONTENT_LENGTH", "CONTENT_TYPE", "DOCUMENT_ROOT", "GATEWAY_INTERFACE", "PATH_INFO",
	"PATH_TRANSLATED", "QUERY_STRING", "REQUEST_METHOD", "REQUEST_URI", "SCRIPT_FILENAME",
	"SCRIPT_NAME", "SERVER_SOFTWARE",
}

type originKey struct{}

// WithOrigin returns a context that records the meta-variables a front web
// server sent for this request. [AppendEnv] passes the connection variables
// among them (REMOTE_ADDR, SERVER_PORT, HTTPS, REMOTE_USER, ...) and any
// non-standard ones (SSL_*, custom fastcgi_param values) on unchanged, so they
// survive every hop. The map must not be modified afterwards.
func WithOrigin(ctx context.Context, vars map[string]string) context.Context {
	return context.WithValue(ctx, originKey{}, vars)
}

// Origin returns the meta-variables recorded by [WithOrigin], or nil.
func Origin(ctx context.Context) map[string]string {
	m, _ := ctx.Value(originKey{}).(map[string]string)
	return m
}

// frontRoot returns the DOCUMENT_ROOT the front web server sent for r
// (a FastCGI, SCGI or CGI front, [Origin]), or "" if it sent none. ferry's
// own HTTP front sends none.
func frontRoot(r *http.Request) string {
	root := Origin(r.Context())["DOCUMENT_ROOT"]
	if hasCTL(root) {
		return ""
	}
	return root
}

// AppendEnv appends the CGI/1.1 meta-variables for r running script s to dst,
// as "NAME=value" strings, and returns the extended slice. software is
// SERVER_SOFTWARE.
//
// It sets every variable of RFC 3875 § 4.1 that applies, plus REQUEST_URI,
// REQUEST_SCHEME, REMOTE_PORT, SERVER_ADDR, HTTPS, DOCUMENT_ROOT and
// SCRIPT_FILENAME, which real scripts rely on, and HTTP_* variables for the
// request headers (§ 4.1.18) with these protections:
//   - the Proxy header never becomes HTTP_PROXY (httpoxy, Go issue 16405);
//   - a header whose name holds anything but letters, digits and '-' is
//     dropped, so "X_Foo" cannot pose as "X-Foo" after '-' becomes '_';
//   - a header whose value holds NUL, CR or LF is dropped;
//   - Content-Type and Content-Length appear only as CONTENT_TYPE and
//     CONTENT_LENGTH.
//
// Variables are appended in a fixed order, headers sorted by name. If a
// variable derived from the URL path holds NUL, CR or LF, AppendEnv returns
// an error wrapping [ErrInvalidMetaVariable]; if dst and the variables
// together go past MaxEnvBytes (or one past MaxEnvVarBytes), an error
// wrapping [ErrEnvTooLarge].
func AppendEnv(dst []string, r *http.Request, s Script, software string) ([]string, error) {
	for _, v := range [...]struct{ name, value string }{
		{"SCRIPT_NAME", s.Name}, {"PATH_INFO", s.PathInfo}, {"SCRIPT_FILENAME", s.Filename}, {"DOCUMENT_ROOT", s.Root},
	} {
		if hasCTL(v.value) {
			return dst, fmt.Errorf("%w: %s %q", ErrInvalidMetaVariable, v.name, v.value)
		}
	}
	e := envPool.Get().(*envBuf)
	defer e.free()

	e.add("GATEWAY_INTERFACE", "CGI/1.1")
	e.add("SERVER_SOFTWARE", software)
	e.add("REQUEST_METHOD", r.Method)
	e.add("QUERY_STRING", r.URL.RawQuery) // § 4.1.7: raw, and set even when empty
	e.add("REQUEST_URI", requestURI(r))
	e.add("SCRIPT_NAME", s.Name)
	if s.PathInfo != "" {
		e.add("PATH_INFO", s.PathInfo)
		if s.Root != "" {
			e.add2("PATH_TRANSLATED", strings.TrimSuffix(s.Root, "/"), s.PathInfo)
		}
	}
	if s.Filename != "" {
		e.add("SCRIPT_FILENAME", s.Filename)
	}
	if s.Root != "" {
		e.add("DOCUMENT_ROOT", s.Root)
	}
	if r.ContentLength > 0 || (r.ContentLength == 0 && r.Header.Get("Content-Length") != "") {
		e.b = append(e.b, "CONTENT_LENGTH="...)
		e.b = strconv.AppendInt(e.b, r.ContentLength, 10)
		e.end()
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !hasCTL(ct) {
		e.add("CONTENT_TYPE", ct)
	}

	if origin := Origin(r.Context()); origin != nil {
		// The front web server described the connection (REMOTE_ADDR,
		// SERVER_PORT, HTTPS, REMOTE_USER, AUTH_TYPE, ...): pass that on
		// unchanged rather than derive it again from this hop.
		appendOrigin(e, origin)
		appendRequired(e, r, origin)
	} else {
		appendConn(e, r)
	}

	if r.Host != "" && !hasCTL(r.Host) {
		e.add("HTTP_HOST", r.Host)
	}
	appendHeaders(e, r.Header)
	if err := e.checkSize(dst); err != nil {
		return dst, err
	}
	return e.appendTo(dst), nil
}

// checkSize checks that dst and the variables in e fit an execve.
func (e *envBuf) checkSize(dst []string) error {
	total := len(e.b) + envOverhead*len(e.ends)
	for _, kv := range dst {
		total += len(kv) + envOverhead
	}
	if total > MaxEnvBytes {
		return fmt.Errorf("%w: %d variables, %d bytes, over %d", ErrEnvTooLarge, len(e.ends)+len(dst), total, MaxEnvBytes)
	}
	start := 0
	for _, end := range e.ends {
		if end-start > MaxEnvVarBytes {
			name, _, _ := strings.Cut(string(e.b[start:min(end, start+64)]), "=")
			return fmt.Errorf("%w: %s is %d bytes, over %d", ErrEnvTooLarge, name, end-start, MaxEnvVarBytes)
		}
		start = end
	}
	return nil
}

// envBuf builds "NAME=value" strings into one buffer, so that a request's
// whole environment costs one string allocation.
type envBuf struct {
	b    []byte
	ends []int
	keys []string
}

var envPool = sync.Pool{New: func() any { return &envBuf{b: make([]byte, 0, 2048), ends: make([]int, 0, 48)} }}

func (e *envBuf) add(name, value string) {
	e.b = append(e.b, name...)
	e.b = append(e.b, '=')
	e.b = append(e.b, value...)
	e.end()
}

func (e *envBuf) add2(name, v1, v2 string) {
	e.b = append(e.b, name...)
	e.b = append(e.b, '=')
	e.b = append(e.b, v1...)
	e.b = append(e.b, v2...)
	e.end()
}

func (e *envBuf) end() { e.ends = append(e.ends, len(e.b)) }

// appendTo appends the variables to dst as substrings of one string.
func (e *envBuf) appendTo(dst []string) []string {
	dst = slices.Grow(dst, len(e.ends))
	all := string(e.b)
	start := 0
	for _, end := range e.ends {
		dst = append(dst, all[start:end])
		start = end
	}
	return dst
}

func (e *envBuf) free() {
	if cap(e.b) > 64<<10 {
		return // a request with huge headers: let it go
	}
	e.b, e.ends, e.keys = e.b[:0], e.ends[:0], e.keys[:0]
	envPool.Put(e)
}

// appendConn derives the connection variables from r itself.
func appendConn(e *envBuf, r *http.Request) {
	https := r.TLS != nil
	if https {
		e.add("REQUEST_SCHEME", "https")
		e.add("HTTPS", "on")
	} else {
		e.add("REQUEST_SCHEME", "http")
	}
	e.add("SERVER_PROTOCOL", serverProtocol(r))

	hostName, hostPort := splitHost(r.Host)
	localIP, localPort := "", ""
	var local netip.AddrPort // the local address of a TCP connection, not made a string
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if t, ok := a.(*net.TCPAddr); ok && t.IP != nil && t.Zone == "" {
			ap := t.AddrPort()
			local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
		if !local.IsValid() {
			localIP, localPort = splitHostPort(a.String())
		}
	}
	// § 4.1.14: the name of the server host the Script-URI names, from Host;
	// an IPv6 literal keeps its brackets.
	if hostName == "" || hasCTL(hostName) {
		if local.IsValid() {
			localIP = local.Addr().String()
		}
		hostName = localIP
		if strings.Contains(localIP, ":") {
			hostName = "[" + localIP + "]"
		}
	}
	if hostName != "" {
		e.add("SERVER_NAME", hostName)
	}
	switch {
	case local.IsValid():
		e.b = append(e.b, "SERVER_ADDR="...)
		e.b = local.Addr().AppendTo(e.b)
		e.end()
	case localIP != "":
		e.add("SERVER_ADDR", localIP)
	}
	// § 4.1.15: the port on which the request was received.
	port := localPort
	if port == "" && !local.IsValid() && isDigits(hostPort) {
		port = hostPort
	}
	if port == "" && !local.IsValid() {
		port = "80"
		if https {
			port = "443"
		}
	}
	if local.IsValid() {
		e.b = append(e.b, "SERVER_PORT="...)
		e.b = strconv.AppendUint(e.b, uint64(local.Port()), 10)
		e.end()
	} else {
		e.add("SERVER_PORT", port)
	}

	remoteIP, remotePort := splitHostPort(r.RemoteAddr)
	if remoteIP != "" && !hasCTL(remoteIP) {
		// § 4.1.9: REMOTE_HOST may carry REMOTE_ADDR when no name is looked up.
		e.add("REMOTE_ADDR", remoteIP)
		e.add("REMOTE_HOST", remoteIP)
	}
	if remotePort != "" && !hasCTL(remotePort) {
		e.add("REMOTE_PORT", remotePort)
	}
}

// appendRequired adds the variables RFC 3875 § 4.1 requires that origin
// lacks (an SCGI front need only send CONTENT_LENGTH and SCGI), derived from
// the request as the front described it: its Host and RemoteAddr.
func appendRequired(e *envBuf, r *http.Request, origin map[string]string) {
	// A value appendOrigin dropped (NUL, CR or LF in it) is no value.
	given := func(name string) bool {
		v, ok := origin[name]
		return ok && !hasCTL(v)
	}
	hostName, hostPort := splitHost(r.Host)
	if !given("SERVER_NAME") && hostName != "" && !hasCTL(hostName) {
		e.add("SERVER_NAME", hostName)
	}
	if !given("SERVER_PORT") {
		switch {
		case hostPort != "" && isDigits(hostPort):
			e.add("SERVER_PORT", hostPort)
		case r.TLS != nil:
			e.add("SERVER_PORT", "443")
		default:
			e.add("SERVER_PORT", "80")
		}
	}
	if !given("REMOTE_ADDR") {
		if ip, _ := splitHostPort(r.RemoteAddr); ip != "" && !hasCTL(ip) {
			e.add("REMOTE_ADDR", ip)
		}
	}
	if !given("SERVER_PROTOCOL") {
		e.add("SERVER_PROTOCOL", serverProtocol(r))
	}
}

// serverProtocol is SERVER_PROTOCOL (RFC 3875 § 4.1.16).
func serverProtocol(r *http.Request) string {
	if r.Proto == "" {
		return "HTTP/1.1"
	}
	return r.Proto
}

// appendOrigin passes on what the front web server said about the connection,
// and its non-standard variables, in a stable order.
func appendOrigin(e *envBuf, origin map[string]string) {
	names := e.keys[:0]
	for name, value := range origin {
		if strings.HasPrefix(name, "HTTP_") || slices.Contains(derivedVars[:], name) ||
			!validVarName(name) || hasCTL(value) {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		e.add(name, origin[name])
	}
	e.keys = names[:0]
}

// appendHeaders appends HTTP_* variables for h, sorted by name.
func appendHeaders(e *envBuf, h http.Header) {
	keys := e.keys[:0]
	for k, vals := range h {
		if len(vals) > 0 && passHeader(k) && !slices.ContainsFunc(vals, hasCTL) {
			keys = append(keys, k)
		}
	}
	// Keys differing only in case ("x-foo" and "X-Foo", possible in a map
	// built by hand) name one variable: sorting case-insensitively puts them
	// side by side, and their values are joined.
	slices.SortFunc(keys, func(a, b string) int {
		if c := compareFold(a, b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for i, k := range keys {
		sep := ", "
		if strings.EqualFold(k, "Cookie") {
			sep = "; "
		}
		if i > 0 && strings.EqualFold(keys[i-1], k) {
			e.b = append(e.b, sep...)
		} else {
			e.b = appendHeaderVarName(e.b, k)
			e.b = append(e.b, '=')
		}
		for j, v := range h[k] {
			if j > 0 {
				e.b = append(e.b, sep...)
			}
			e.b = append(e.b, v...)
		}
		if i+1 == len(keys) || !strings.EqualFold(keys[i+1], k) {
			e.end()
		}
	}
	e.keys = keys[:0]
}

// compareFold compares ASCII strings ignoring case.
func compareFold(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		ca, cb := a[i], b[i]
		if 'a' <= ca && ca <= 'z' {
			ca -= 'a' - 'A'
		}
		if 'a' <= cb && cb <= 'z' {
			cb -= 'a' - 'A'
		}
		if ca != cb {
			return int(ca) - int(cb)
		}
	}
	return len(a) - len(b)
}

// passHeader reports whether header k becomes an HTTP_* variable (RFC 3875
// § 4.1.18): not Proxy (httpoxy, Go issue 16405), not the fields that have
// their own variables, and only names of letters, digits and '-': '_' would
// collide with '-', and anything else is not a name a script could use.
func passHeader(k string) bool {
	if k == "" || strings.EqualFold(k, "Proxy") || strings.EqualFold(k, "Content-Type") ||
		strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Host") {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// appendHeaderVarName appends "HTTP_" and k upper-cased with '-' as '_'.
func appendHeaderVarName(b []byte, k string) []byte {
	b = append(b, "HTTP_"...)
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case c == '-':
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// validVarName reports whether name is a plausible environment variable name:
// letters, digits and '_', not starting with a digit.
func validVarName(name string) bool {
	if name == "" || ('0' <= name[0] && name[0] <= '9') {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// hasCTL reports whether s holds a NUL, CR or LF byte.
func hasCTL(s string) bool {
	return strings.ContainsAny(s, "\x00\r\n")
}

// requestURI returns the request target as the client sent it.
func requestURI(r *http.Request) string {
	if r.RequestURI != "" && !hasCTL(r.RequestURI) {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// splitHost splits a Host header value into name and port, keeping the
// brackets of an IPv6 literal as RFC 3875 § 4.1.14 writes it.
func splitHost(host string) (name, port string) {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		return host[:i], host[i+1:]
	}
	return host, ""
}

// splitHostPort splits "ip:port" with the IPv6 brackets removed; a value with
// no port is returned whole.
func splitHostPort(addr string) (host, port string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, ""
	}
	return h, p
}
