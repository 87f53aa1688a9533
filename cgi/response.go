package cgi

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/ferrygw/ferry/internal/defaults"
	"github.com/ferrygw/ferry/internal/httpsyntax"
)

// Limits on a script's response header block. Zero fields of [HeaderLimits]
// take these values.
const (
	DefaultMaxHeaderLine   = 16 << 10  // one header line, like Apache's 8 KiB and well above Go's 1 KiB
	DefaultMaxHeaderBytes  = 256 << 10 // the whole header block
	DefaultMaxHeaderFields = 1000
)

// HeaderLimits bounds the header block of a CGI response.
type HeaderLimits struct {
	// MaxLine is the longest header line in bytes, line end included. If
	// zero or negative, DefaultMaxHeaderLine is used.
	MaxLine int
	// MaxBytes bounds the whole header block. If zero or negative,
	// DefaultMaxHeaderBytes is used.
	MaxBytes int
	// MaxFields bounds the number of header lines. If zero or negative,
	// DefaultMaxHeaderFields is used.
	MaxFields int
}

func (l HeaderLimits) maxLine() int   { return defaults.Or(l.MaxLine, DefaultMaxHeaderLine) }
func (l HeaderLimits) maxBytes() int  { return defaults.Or(l.MaxBytes, DefaultMaxHeaderBytes) }
func (l HeaderLimits) maxFields() int { return defaults.Or(l.MaxFields, DefaultMaxHeaderFields) }

// HeadEnd reports where the header block that b begins with ends, for a
// reader that must have an answer's whole head before it passes it on (a
// load balancer that may still send the request elsewhere): n is the
// length of the block through the empty line that ends it (lines end in
// LF or CRLF, as [ReadResponse] reads them), or 0 when b does not hold its
// end yet. over reports that b already breaks lim where [ReadResponse]
// would refuse it (a line, the lines or the block too long): reading on
// is no use.
func (l HeaderLimits) HeadEnd(b []byte) (n int, over bool) {
	for lines := 0; ; lines++ {
		if lines > l.maxFields() {
			return 0, true
		}
		i := bytes.IndexByte(b[n:], '\n')
		if i < 0 {
			// The line's end is still to come, one byte at least.
			return 0, len(b)-n >= l.maxLine() || len(b) >= l.maxBytes()
		}
		if i+1 > l.maxLine() || n+i+1 > l.maxBytes() {
			return 0, true
		}
		n += i + 1
		if i == 0 || i == 1 && b[n-2] == '\r' {
			return n, false
		}
	}
}

// ErrMalformedResponse is wrapped by every error [ReadResponse] returns for
// output that is not a valid CGI response: a gateway answers 502 Bad Gateway.
var ErrMalformedResponse = errors.New("cgi: malformed response from script")

// ErrNoResponse is returned, wrapped with [ErrMalformedResponse], when a
// script wrote nothing at all to its standard output.
var ErrNoResponse = errors.New("cgi: script wrote no output")

// Kind is the kind of a CGI response (RFC 3875 § 6.2).
type Kind uint8

// The kinds of CGI response.
const (
	// Document is a document response (§ 6.2.1), with or without a Status.
	Document Kind = iota
	// LocalRedirect is a Location holding a local path and no Status
	// (§ 6.2.2): the gateway serves that path as a new GET request itself.
	LocalRedirect
	// ClientRedirect is a Location holding anything else (§ 6.2.3, § 6.2.4):
	// the client is sent a redirect, 302 unless the script gave a Status.
	ClientRedirect
)

var kindNames = [...]string{Document: "document", LocalRedirect: "local-redirect", ClientRedirect: "client-redirect"}

// String returns the kind's name.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Response is the parsed header block of a CGI response.
type Response struct {
	Kind Kind
	// Status is the status to send: from a Status field, from the status line
	// of an NPH response, 302 for a client redirect without Status, else 200.
	Status int
	// Reason is the reason phrase the script gave, if any.
	Reason string
	// Header holds the header fields to send, in canonical form and in the
	// order given; Status and hop-by-hop fields are removed. Location is kept.
	Header http.Header
	// Location is the Location field's value, if any.
	Location string
}

// hopHeaders are connection-level fields a script cannot meaningfully set: its
// body is framed by the gateway (RFC 9110 § 7.6.1).
var hopHeaders = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// ReadAppResponse reads the header of resp, an application's answer,
// from br, which reads resp.Body: a CGI header block or, where
// resp.StatusLine says the application may send one (uwsgi does), an HTTP
// status line and header. A short peek is no status line; ReadResponse
// reports the rest.
func ReadAppResponse(br *bufio.Reader, resp *AppResponse, lim HeaderLimits) (*Response, error) {
	return ReadResponse(br, appNPH(br, resp), lim)
}

// appNPH reports whether resp, read by br, begins with an HTTP status
// line.
func appNPH(br *bufio.Reader, resp *AppResponse) bool {
	if !resp.StatusLine {
		return false
	}
	start, _ := br.Peek(5)
	return string(start) == "HTTP/"
}

// ReadResponse reads and parses a CGI response header block (RFC 3875 § 6)
// from br, leaving br at the first byte of the body. Lines may end in LF or
// CRLF. If nph is true, the first line must be an HTTP status line, as
// written by a non-parsed-header script (§ 5).
//
// Malformed output gives an error wrapping [ErrMalformedResponse]: a header
// block that does not end (EOF or limits), a line that is not "name: value",
// a folded line, control bytes such as NUL, a Status that is not a three-digit
// code from 200 to 599, or a repeated Status or Location.
func ReadResponse(br *bufio.Reader, nph bool, lim HeaderLimits) (*Response, error) {
	p := respParser{br: br, lim: lim}
	if err := p.read(nph); err != nil {
		return nil, err
	}
	r := p.resp
	r.Header = p.fields.Header()
	return &r, nil
}

// read reads and checks the header block, and settles the response's
// kind and status; the fields to send stay gathered in p.
func (p *respParser) read(nph bool) error {
	if nph {
		line, err := p.line()
		if err != nil {
			return err
		}
		if err := p.statusLine(line); err != nil {
			return err
		}
	}
	for {
		line, err := p.line()
		if err != nil {
			return err
		}
		if len(line) == 0 {
			break
		}
		if err := p.field(line); err != nil {
			return err
		}
	}
	return p.finish()
}

type respParser struct {
	br          *bufio.Reader
	lim         HeaderLimits
	resp        Response // Header stays nil: the fields are gathered below
	n           int      // lines read
	bytes       int      // header bytes read
	hasStatus   bool     // a Status field or status line was seen
	hasCGIField bool     // Content-Type, Location or Status was seen
	long        []byte

	// The fields to send, gathered so that the header is built in a few
	// allocations, not three a field.
	fields httpsyntax.Fields
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedResponse}, args...)...)
}

// line returns the next line without its line end. The slice is valid until
// the next call.
func (p *respParser) line() ([]byte, error) {
	p.n++
	if p.n > p.lim.maxFields()+1 {
		return nil, malformed("more than %d header lines", p.lim.maxFields())
	}
	line, err := p.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		p.long = append(p.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) && len(p.long) <= p.lim.maxLine() {
			line, err = p.br.ReadSlice('\n')
			p.long = append(p.long, line...)
		}
		line = p.long
	}
	if len(line) > p.lim.maxLine() {
		return nil, malformed("header line %d longer than %d bytes", p.n, p.lim.maxLine())
	}
	p.bytes += len(line)
	if p.bytes > p.lim.maxBytes() {
		return nil, malformed("header block longer than %d bytes", p.lim.maxBytes())
	}
	if err != nil {
		if err == io.EOF {
			if p.n == 1 && len(line) == 0 {
				return nil, fmt.Errorf("%w: %w", ErrMalformedResponse, ErrNoResponse)
			}
			return nil, malformed("output ended inside the header block (line %d); is the blank line after the headers missing?", p.n)
		}
		return nil, fmt.Errorf("cgi: reading script output: %w", err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// statusLine parses "HTTP/1.1 200 OK" from an NPH script.
func (p *respParser) statusLine(line []byte) error {
	proto, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || !bytes.HasPrefix(proto, []byte("HTTP/")) {
		return malformed("NPH output does not start with an HTTP status line: %.64q", line)
	}
	if _, _, ok := http.ParseHTTPVersion(string(proto)); !ok {
		return malformed("NPH status line has a bad protocol %.32q", proto)
	}
	return p.status(rest)
}

// status parses "404 Not Found" (RFC 3875 § 6.3.3).
func (p *respParser) status(v []byte) error {
	if p.hasStatus {
		return malformed("Status given twice")
	}
	p.hasStatus = true
	code, reason, _ := bytes.Cut(v, []byte(" "))
	if len(code) != 3 || !isDigits(code) {
		return malformed("bad Status %.64q: want a three-digit code", v)
	}
	n := int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	if n < 200 || n > 599 {
		return malformed("bad Status %.64q: code must be 200 to 599", v)
	}
	if httpsyntax.HasCTL(reason) {
		return malformed("bad Status %.64q: control byte in reason phrase", v)
	}
	p.resp.Status, p.resp.Reason = n, reasonPhrase(n, bytes.TrimSpace(reason))
	p.hasCGIField = true
	return nil
}

// reasonPhrase returns r as a string: net/http's text for code when it is
// that ("OK", "Not Found"), which costs no allocation.
func reasonPhrase(code int, r []byte) string {
	if t := http.StatusText(code); string(r) == t {
		return t
	}
	return string(r)
}

func (p *respParser) field(line []byte) error {
	if line[0] == ' ' || line[0] == '\t' {
		return malformed("folded header line %d (obsolete line folding)", p.n)
	}
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		if p.n == 1 {
			return malformed("no header block: first line %.64q is not a header field", line)
		}
		return malformed("header line %d is not \"name: value\": %.64q", p.n, line)
	}
	name := line[:i]
	for _, c := range name {
		if !httpsyntax.IsTokenByte(c) {
			return malformed("header line %d has a bad field name %.64q", p.n, name)
		}
	}
	value := bytes.Trim(line[i+1:], " \t")
	if httpsyntax.HasCTL(value) {
		return malformed("header line %d (%s) holds a control byte", p.n, name)
	}
	key := canonicalKey(name)
	switch key {
	case "Status":
		return p.status(value)
	case "Location":
		if p.resp.Location != "" {
			return malformed("Location given twice")
		}
		if len(value) == 0 {
			return malformed("empty Location")
		}
		p.resp.Location = string(value)
		p.hasCGIField = true
	case "Content-Type":
		// RFC 3875 § 6.3: a CGI field appears at most once.
		if _, dup := p.fields.Lookup("Content-Type"); dup {
			return malformed("Content-Type given twice")
		}
		p.hasCGIField = true
	case "Content-Length":
		if !isDigits(value) {
			return malformed("bad Content-Length %.32q", value)
		}
		if prev, dup := p.fields.Lookup("Content-Length"); dup {
			if !bytes.Equal(prev, value) {
				return malformed("conflicting Content-Length values %.32q and %.32q", string(prev), value)
			}
			return nil // the same value again: one is enough
		}
	}
	for _, h := range hopHeaders {
		if key == h {
			return nil
		}
	}
	p.fields.Add(key, value)
	return nil
}

// canonicalKey is [textproto.CanonicalMIMEHeaderKey] for a field name made
// of token bytes, without an allocation for the names responses usually
// carry.
func canonicalKey(name []byte) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return textproto.CanonicalMIMEHeaderKey(string(name))
	}
	b := buf[:len(name)]
	upper := true
	for i, c := range name {
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k, ok := commonKeys[string(b)]; ok {
		return k
	}
	return string(b)
}

// commonKeys interns the canonical names of the fields responses usually
// carry. It is never written after init.
var commonKeys = func() map[string]string {
	m := make(map[string]string)
	for _, k := range []string{
		"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
		"Access-Control-Max-Age", "Age", "Allow", "Cache-Control", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Location", "Content-Range",
		"Content-Security-Policy", "Content-Type", "Date", "Etag", "Expires", "Keep-Alive",
		"Last-Modified", "Link", "Location", "Pragma", "Proxy-Connection", "Referrer-Policy", "Refresh",
		"Retry-After", "Server", "Set-Cookie", "Status", "Strict-Transport-Security", "Te", "Trailer",
		"Transfer-Encoding", "Upgrade", "Vary", "Www-Authenticate", "X-Content-Type-Options",
		"X-Frame-Options", "X-Powered-By", "X-Xss-Protection",
	} {
		m[k] = k
	}
	return m
}()

// finish checks the header block read and settles the kind and status.
func (p *respParser) finish() error {
	r := &p.resp
	if !p.hasCGIField {
		// RFC 3875 § 6.3: at least one CGI field must be supplied; a blank
		// first line means the script wrote no header block at all.
		return malformed("no CGI field: the header block has no Content-Type, Location or Status")
	}
	switch {
	case r.Location != "" && !p.hasStatus && isLocalPath(r.Location):
		r.Kind, r.Status = LocalRedirect, http.StatusOK
	case r.Location != "":
		r.Kind = ClientRedirect
		if !p.hasStatus {
			r.Status = http.StatusFound
		}
	default:
		if !p.hasStatus {
			r.Status = http.StatusOK
		}
	}
	return nil
}

// isLocalPath reports whether a Location value is a local URL path (RFC 3875
// § 6.2.2: "/" abs-path [ "?" query ]); "//host/..." is not.
func isLocalPath(loc string) bool {
	return strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//")
}

func isDigits[S string | []byte](s S) bool {
	if len(s) == 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
