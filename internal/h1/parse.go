package h1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"

	"github.com/ferrygw/ferry/internal/httpsyntax"
)

// headError is a request head refused with an answer: net/http's text for
// it, and the status.
type headError struct {
	status int
	text   string // net/http's detail, in the status line and body, unless plain; what was wrong, for the log
	plain  bool   // answered "400 Bad Request" with no detail, as net/http answers its parse errors
	refuse string // the framing reason given to Server.Refused; "" if net/http refuses it too
}

func (e *headError) Error() string {
	if e.text == "" {
		return http.StatusText(e.status)
	}
	return http.StatusText(e.status) + ": " + e.text
}

// reason says what was wrong with the head, for the log.
func (e *headError) reason() string {
	switch {
	case e.refuse != "":
		return e.refuse
	case e.text != "":
		return e.text
	case e.status == http.StatusRequestHeaderFieldsTooLarge:
		return "request head over the header size limit"
	case e.status == http.StatusNotImplemented:
		return "unsupported transfer encoding"
	}
	return "invalid request head"
}

// errTooLarge is a head over the header limit: 431.
var errTooLarge = &headError{status: http.StatusRequestHeaderFieldsTooLarge}

// errLineTooLong is a request line over the header limit by itself: 414,
// as nginx and Apache answer it, where net/http answers 431.
var errLineTooLong = &headError{status: http.StatusRequestURITooLong, text: "request line over the header size limit", plain: true}

// badRequest is net/http's plain 400 for a head it cannot parse; detail
// says what was wrong, for the log only.
func badRequest(detail string) *headError {
	return &headError{status: http.StatusBadRequest, text: detail, plain: true}
}

// errFragment is a request target with a fragment: 400, where net/http
// serves it.
var errFragment = badRequest("a fragment (#) in the request target")

// refused is a head refused for its framing (RFC 9112 § 6.1, § 5.2).
func refused(reason string) *headError {
	return &headError{status: http.StatusBadRequest, plain: true, refuse: reason}
}

// maxFramingValue bounds a Content-Length or Transfer-Encoding field's
// value: a longer one is refused, as the framer of the TLS front does.
const maxFramingValue = 128

// headReader reads a request head from br, within a byte budget.
type headReader struct {
	br     *bufio.Reader
	budget int    // bytes left to the header limit
	long   []byte // a line longer than br's buffer, gathered
	// partial is what came of the line that failed (timed out, cut off
	// by the client, over the limit), valid until the next read.
	partial []byte
}

// line returns the next line without its line end (LF, or CRLF), valid
// until the next call. A line that does not end within the budget is
// errTooLarge; the connection's end, io.EOF or io.ErrUnexpectedEOF.
func (h *headReader) line() ([]byte, error) {
	b, err := h.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		h.long = append(h.long[:0], b...)
		for err == bufio.ErrBufferFull {
			if len(h.long) > h.budget {
				h.partial = h.long
				return nil, errTooLarge
			}
			b, err = h.br.ReadSlice('\n')
			h.long = append(h.long, b...)
		}
		b = h.long
	}
	h.budget -= len(b)
	if h.budget < 0 {
		h.partial = b
		return nil, errTooLarge
	}
	if err != nil {
		h.partial = b
		if len(b) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

// request is what the head of a request says, beyond the *http.Request.
type request struct {
	req          http.Request // as read, then with its context: the handler's request
	contentLen   int64        // -1: chunked
	wantsClose   bool         // Connection: close, or HTTP/1.0 without keep-alive
	wants10Keep  bool         // HTTP/1.0 with Connection: keep-alive
	expect100    bool         // Expect: 100-continue with a body on HTTP/1.1
	expectFailed bool         // an Expect other than 100-continue: 417
	// line is the request line of a head that failed, or as much of it
	// as came, when it could not be parsed; "" once it was (the request
	// has its parts).
	line string
}

// maxLoggedLine bounds the request line kept for the log of a head that
// failed.
const maxLoggedLine = 8 << 10

// failedLine keeps b, the request line of a head that failed, or what
// came of it, for the log.
func (rq *request) failedLine(b []byte) {
	rq.line = string(b[:min(len(b), maxLoggedLine)])
}

// readHead reads and checks a request head, as net/http's server reads
// it, with the framing refusals of this package. The Body is left for
// the caller.
func readHead(h *headReader, rq *request) error {
	line, err := h.line()
	if err != nil {
		rq.failedLine(h.partial)
		if err == errTooLarge {
			return errLineTooLong
		}
		return err
	}
	r := &rq.req
	if err := parseRequestLine(line, r); err != nil {
		rq.failedLine(line)
		return err
	}

	hdr, err := readFields(h, false)
	if err != nil {
		return err
	}
	r.Header = hdr
	if r.ProtoMajor != 1 {
		return &headError{status: http.StatusHTTPVersionNotSupported, text: "unsupported protocol version"}
	}
	hosts, haveHost := hdr["Host"]
	if len(hosts) > 1 {
		return badRequest("more than one Host field")
	}
	if r.ProtoAtLeast(1, 1) && (!haveHost || len(hosts) == 0) && r.Method != "CONNECT" {
		return &headError{status: http.StatusBadRequest, text: "missing required Host header"}
	}
	if len(hosts) == 1 && !validHost(hosts[0]) {
		return &headError{status: http.StatusBadRequest, text: "malformed Host header"}
	}
	for k := range hdr {
		if !httpsyntax.IsToken(k) {
			return &headError{status: http.StatusBadRequest, text: "invalid header name"}
		}
	}
	r.Host = r.URL.Host
	if r.Host == "" && len(hosts) == 1 {
		r.Host = hosts[0]
	}
	delete(hdr, "Host")
	if pragma, ok := hdr["Pragma"]; ok && len(pragma) > 0 && pragma[0] == "no-cache" {
		if _, ok := hdr["Cache-Control"]; !ok {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}

	conn := hdr["Connection"]
	switch {
	case r.ProtoMajor == 1 && r.ProtoMinor == 0:
		rq.wantsClose = !hasToken(conn, "keep-alive") || hasToken(conn, "close")
		rq.wants10Keep = hasToken(conn, "keep-alive")
	default:
		rq.wantsClose = hasToken(conn, "close")
	}
	r.Close = rq.wantsClose

	// Framing (RFC 9112 § 6): refuse what smuggling is made of, then as
	// net/http's readTransfer.
	tes, haveTE := hdr["Transfer-Encoding"]
	cls := hdr["Content-Length"]
	for _, v := range append(tes[:len(tes):len(tes)], cls...) {
		if len(v) > maxFramingValue {
			return refused("a Content-Length or Transfer-Encoding field over 128 bytes")
		}
	}
	switch {
	case haveTE && len(cls) > 0:
		return refused("Content-Length with Transfer-Encoding (RFC 9112 § 6.1)")
	case haveTE && !r.ProtoAtLeast(1, 1):
		return refused("Transfer-Encoding in an HTTP/1.0 request (RFC 9112 § 6.1)")
	}
	chunked := false
	if haveTE {
		delete(hdr, "Transfer-Encoding")
		if len(tes) != 1 || !strings.EqualFold(tes[0], "chunked") {
			return &headError{status: http.StatusNotImplemented}
		}
		chunked = true
		r.TransferEncoding = []string{"chunked"}
	}
	if len(cls) > 1 {
		first := textproto.TrimString(cls[0])
		for _, v := range cls[1:] {
			if textproto.TrimString(v) != first {
				return badRequest("Content-Length fields that differ")
			}
		}
		hdr["Content-Length"] = []string{first}
		cls = hdr["Content-Length"]
	}
	switch {
	case chunked:
		rq.contentLen = -1
	case len(cls) > 0:
		n, err := strconv.ParseUint(textproto.TrimString(cls[0]), 10, 63)
		if err != nil {
			return badRequest("invalid Content-Length")
		}
		rq.contentLen = int64(n)
	}
	r.ContentLength = rq.contentLen
	if vv, ok := hdr["Trailer"]; ok && chunked {
		// Without chunking, net/http leaves the field in the header.
		delete(hdr, "Trailer")
		r.Trailer = make(http.Header)
		for _, v := range vv {
			for _, k := range strings.Split(v, ",") {
				k = textproto.TrimString(k)
				if k == "" {
					continue
				}
				k = http.CanonicalHeaderKey(k)
				switch k {
				case "Transfer-Encoding", "Trailer", "Content-Length":
					return badRequest("a framing field named in Trailer")
				}
				r.Trailer[k] = nil
			}
		}
		if len(r.Trailer) == 0 {
			r.Trailer = nil
		}
	}

	if ex, ok := hdr["Expect"]; ok && len(ex) > 0 {
		if hasToken(ex[:1], "100-continue") {
			rq.expect100 = r.ProtoAtLeast(1, 1) && rq.contentLen != 0
		} else if ex[0] != "" {
			rq.expectFailed = true
		}
	}
	return nil
}

// parseRequestLine parses line, a request line, into r's method, target
// and protocol, as net/http's server does.
func parseRequestLine(line []byte, r *http.Request) error {
	method, rest, ok1 := bytes.Cut(line, []byte{' '})
	uri, proto, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 {
		return badRequest("invalid request line")
	}
	if !httpsyntax.IsToken(method) {
		return badRequest("invalid method in the request line")
	}
	r.Method = methodString(method)
	r.Proto = protoString(proto)
	var ok bool
	if r.ProtoMajor, r.ProtoMinor, ok = http.ParseHTTPVersion(r.Proto); !ok {
		return badRequest("invalid HTTP version in the request line")
	}
	if bytes.IndexByte(uri, '#') >= 0 {
		// RFC 9112 § 3.2: no form of request-target has a fragment, which
		// a client keeps to itself; net/http would put it in the query
		// ("?a#b" is RawQuery "a#b"). Apache answers 400 (nginx drops it).
		return errFragment
	}
	r.RequestURI = string(uri)
	raw := r.RequestURI
	justAuthority := r.Method == "CONNECT" && !strings.HasPrefix(raw, "/")
	if justAuthority {
		raw = "http://" + raw
	}
	var err error
	if r.URL, err = url.ParseRequestURI(raw); err != nil {
		return badRequest("invalid request target")
	}
	if justAuthority {
		r.URL.Scheme = ""
	}
	return nil
}

// readFields reads header fields up to the empty line that ends them:
// those of a head, or of a chunked body's trailer. An obs-fold line is
// refused; a name must be a token followed at once by the colon.
func readFields(h *headReader, trailer bool) (http.Header, error) {
	// The fields are gathered as cgi's response reader gathers them: the
	// header costs a few allocations, not two a field.
	var fields httpsyntax.Fields
	first := true
	for {
		line, err := h.line()
		if err != nil {
			return nil, err
		}
		if len(line) == 0 {
			return fields.Header(), nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			if first {
				// net/http: "malformed MIME header initial line".
				return nil, badRequest("a header line starting with a space or tab")
			}
			if trailer {
				return nil, refused("obs-fold in the trailer of a chunked body")
			}
			return nil, refused("obs-fold (a header line starting with a space or tab)")
		}
		first = false
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(name) == 0 {
			return nil, badRequest("invalid header line")
		}
		value = trimOWS(value)
		if httpsyntax.HasCTL(value) {
			return nil, badRequest("a control character in a header value")
		}
		// A name that is not a token is refused once the head is in, as
		// net/http refuses it ("invalid header name").
		fields.Add(canonicalKey(name), value)
	}
}

// canonicalKey is textproto's canonical form of a header name, without an
// allocation for the common ones, whatever their case.
func canonicalKey(name []byte) string {
	if !httpsyntax.IsToken(name) {
		return string(name) // refused once the head is in
	}
	var buf [64]byte
	if len(name) > len(buf) {
		return textproto.CanonicalMIMEHeaderKey(string(name))
	}
	// textproto's rule: upper case first and after each '-', lower case
	// elsewhere.
	upper := true
	for i, c := range name {
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
		upper = c == '-'
	}
	key := buf[:len(name)]
	if k, ok := commonKeys[string(key)]; ok {
		return k
	}
	return string(key)
}

// commonKeys interns the header names most requests carry.
var commonKeys = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Authorization", "Cache-Control",
		"Connection", "Content-Length", "Content-Type", "Cookie", "Expect", "Host", "If-Modified-Since",
		"If-None-Match", "Origin", "Pragma", "Range", "Referer", "Transfer-Encoding", "Upgrade", "User-Agent",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Request-Id",
		// What browsers send with every navigation (Chromium and Firefox).
		"Upgrade-Insecure-Requests", "Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User",
		"Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Priority", "Dnt", "If-Range", "Te"} {
		m[k] = k
	}
	return m
}()

// methodString returns the method, without an allocation for the common ones.
func methodString(b []byte) string {
	switch string(b) {
	case "GET":
		return "GET"
	case "POST":
		return "POST"
	case "HEAD":
		return "HEAD"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "OPTIONS":
		return "OPTIONS"
	}
	return string(b)
}

func protoString(b []byte) string {
	switch string(b) {
	case "HTTP/1.1":
		return "HTTP/1.1"
	case "HTTP/1.0":
		return "HTTP/1.0"
	}
	return string(b)
}

// trimOWS trims spaces and tabs at both ends.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// validHost reports whether h may be a Host field, as net/http checks:
// the bytes of a reg-name, an IP literal and a port, and a few more that
// clients send.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c >= 0x80 {
			continue // net/http lets UTF-8 through
		}
		if !hostChars[c] {
			return false
		}
	}
	return true
}

var hostChars = func() [128]bool {
	var t [128]bool
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!$&'()*+,;=:.-_~%[]" {
		t[c] = true
	}
	return t
}()

// hasToken reports whether any of the comma-separated lists vv holds
// token, case-insensitively.
func hasToken(vv []string, token string) bool {
	for _, v := range vv {
		for len(v) > 0 {
			var e string
			e, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(textproto.TrimString(e), token) {
				return true
			}
		}
	}
	return false
}

// errorAnswer is net/http's answer to a refused head, with what nginx
// and Apache give theirs and net/http does not: a Date and a
// Content-Length. It returns the answer and the size of its body.
func errorAnswer(e *headError) ([]byte, int) {
	var status, body string
	switch {
	case e.status == http.StatusRequestHeaderFieldsTooLarge:
		status, body = "431 Request Header Fields Too Large", "431 Request Header Fields Too Large"
	case e.status == http.StatusNotImplemented:
		status, body = "501 Not Implemented", "Unsupported transfer encoding"
	case e.status == http.StatusRequestURITooLong:
		status, body = "414 URI Too Long", "414 URI Too Long"
	case e.plain:
		status, body = "400 Bad Request", "400 Bad Request"
	default:
		status = fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.text)
		body = status
	}
	b := make([]byte, 0, 160+len(status)+len(body))
	b = append(b, "HTTP/1.1 "...)
	b = append(b, status...)
	b = append(b, "\r\nContent-Type: text/plain; charset=utf-8\r\nDate: "...)
	b = appendDate(b)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\nConnection: close\r\n\r\n"...)
	return append(b, body...), len(body)
}

// isHeadError reports whether err is a refused head, and which.
func isHeadError(err error) (*headError, bool) {
	var he *headError
	ok := errors.As(err, &he)
	return he, ok
}
