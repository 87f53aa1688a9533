package scgi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Defaults for the zero fields of [Limits].
const (
	// DefaultMaxHeaderBytes bounds the netstring holding the header block.
	// nginx, Apache and lighttpd send 1-2 KiB for an ordinary request; 64 KiB
	// leaves room for big cookies while keeping a connection's cost small.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxHeaders bounds the number of name-value pairs.
	DefaultMaxHeaders = 1000
	// DefaultMaxContentLength bounds CONTENT_LENGTH: 1 GiB, Apache's
	// LimitRequestBody default, as cgi.DefaultMaxRequestBody.
	DefaultMaxContentLength = 1 << 30
)

// Limits bounds the header block [ReadHeader] accepts. The zero value
// applies the defaults.
type Limits struct {
	// MaxHeaderBytes bounds the length the netstring declares, checked
	// before anything is allocated. If zero, DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of name-value pairs. If zero,
	// DefaultMaxHeaders.
	MaxHeaders int
	// MaxContentLength bounds CONTENT_LENGTH. If zero,
	// DefaultMaxContentLength.
	MaxContentLength int64
}

func (l Limits) maxHeaderBytes() int {
	if l.MaxHeaderBytes <= 0 {
		return DefaultMaxHeaderBytes
	}
	return l.MaxHeaderBytes
}

func (l Limits) maxHeaders() int {
	if l.MaxHeaders <= 0 {
		return DefaultMaxHeaders
	}
	return l.MaxHeaders
}

func (l Limits) maxContentLength() int64 {
	if l.MaxContentLength <= 0 {
		return DefaultMaxContentLength
	}
	return l.MaxContentLength
}

// ErrMalformedHeader is matched (errors.Is) by every error that reports a
// header block breaking the protocol: a web server answers it with 400.
var ErrMalformedHeader = errors.New("scgi: malformed request header")

// malformed is an error that is one particular kind of ErrMalformedHeader.
type malformed struct{ msg string }

func (e *malformed) Error() string { return e.msg }

// Is makes every malformed error match ErrMalformedHeader.
func (e *malformed) Is(target error) bool { return target == ErrMalformedHeader }

// Errors of [ReadHeader] for a header block that breaks the protocol. Each
// matches ErrMalformedHeader too.
var (
	// ErrLengthLeadingZero: the netstring length starts with '0' and has
	// more digits (netstrings forbid leading zeros).
	ErrLengthLeadingZero error = &malformed{"scgi: netstring length has a leading zero"}
	// ErrBadLength: the netstring length is not a non-empty run of ASCII
	// digits (a sign, a space, another byte, nothing).
	ErrBadLength error = &malformed{"scgi: netstring length is not a decimal number"}
	// ErrMissingColon: the netstring length is not followed by ':'.
	ErrMissingColon error = &malformed{"scgi: netstring length not followed by ':'"}
	// ErrMissingComma: the netstring's bytes are not followed by ','.
	ErrMissingComma error = &malformed{"scgi: netstring not terminated by ','"}
	// ErrTruncated: the connection ended inside the header block.
	ErrTruncated error = &malformed{"scgi: header block cut short"}
	// ErrUnterminatedPair: a name or value lacks its terminating NUL.
	ErrUnterminatedPair error = &malformed{"scgi: header name or value without its NUL"}
	// ErrEmptyName: a header name is empty (protocol.txt § 3: name ::= notnull+).
	ErrEmptyName error = &malformed{"scgi: empty header name"}
	// ErrInvalidName: a header name holds '=', which no CGI meta-variable
	// name can.
	ErrInvalidName error = &malformed{"scgi: header name contains '='"}
	// ErrContentLengthNotFirst: the first header is not CONTENT_LENGTH, or
	// there is none.
	ErrContentLengthNotFirst error = &malformed{"scgi: first header is not CONTENT_LENGTH"}
	// ErrInvalidContentLength: CONTENT_LENGTH is not a non-empty run of
	// ASCII digits without leading zeros ("0" is fine).
	ErrInvalidContentLength error = &malformed{"scgi: CONTENT_LENGTH is not a clean decimal number"}
	// ErrNoSCGI: there is no SCGI header, or its value is not "1".
	ErrNoSCGI error = &malformed{`scgi: no "SCGI: 1" header`}
	// ErrDuplicateName: a header name appears twice.
	ErrDuplicateName error = &malformed{"scgi: duplicate header name"}
)

// Errors of [ReadHeader] for a header block past a [Limits] bound. They do
// not match ErrMalformedHeader.
var (
	// ErrHeaderTooLarge: the netstring declares more than MaxHeaderBytes
	// (431).
	ErrHeaderTooLarge = errors.New("scgi: header block too large")
	// ErrTooManyHeaders: more than MaxHeaders pairs (431).
	ErrTooManyHeaders = errors.New("scgi: too many headers")
	// ErrContentTooLarge: CONTENT_LENGTH exceeds MaxContentLength (413).
	ErrContentTooLarge = errors.New("scgi: CONTENT_LENGTH too large")
)

// Header is the header block of an SCGI request: the CGI meta-variables
// the web server sent.
type Header struct {
	// Names lists the header names in the order sent; Names[0] is
	// CONTENT_LENGTH.
	Names []string
	// Vars maps each name to its value.
	Vars map[string]string
	// ContentLength is CONTENT_LENGTH: the body's exact length.
	ContentLength int64
}

// Params returns the headers as "NAME=value" strings in the order sent, the
// form [AppendRequest] takes.
func (h *Header) Params() []string {
	ps := make([]string, len(h.Names))
	for i, n := range h.Names {
		ps[i] = n + "=" + h.Vars[n]
	}
	return ps
}

// blockPool holds the buffers header blocks are read into; the block is
// copied once into the string the names and values share.
var blockPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxLengthDigits bounds the digits of a netstring length read before the
// limit check gives up: enough for any int.
const maxLengthDigits = 19

// ReadHeader reads an SCGI header block from br (protocol.txt § 3) and
// leaves br at the first byte of the body, which is ContentLength bytes
// long. The netstring's declared length is checked against lim before any
// of it is read or allocated, so a lying length costs nothing.
//
// Every way the block can break the protocol gives an error matching one
// of ErrLengthLeadingZero, ErrBadLength, ErrMissingColon, ErrMissingComma,
// ErrTruncated, ErrUnterminatedPair, ErrEmptyName, ErrInvalidName,
// ErrContentLengthNotFirst, ErrInvalidContentLength, ErrNoSCGI and
// ErrDuplicateName, all of which match ErrMalformedHeader too; a block past
// lim gives ErrHeaderTooLarge, ErrTooManyHeaders or ErrContentTooLarge. A
// connection closed before the first byte gives io.EOF; other read errors
// are returned wrapped.
func ReadHeader(br *bufio.Reader, lim Limits) (*Header, error) {
	n, err := readLength(br, lim.maxHeaderBytes())
	if err != nil {
		return nil, err
	}
	bp := blockPool.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= DefaultMaxHeaderBytes+1 {
			blockPool.Put(bp)
		}
	}()
	if cap(*bp) < n+1 {
		*bp = make([]byte, n+1)
	}
	buf := (*bp)[:n+1]
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, readErr(err)
	}
	if buf[n] != ',' {
		return nil, ErrMissingComma
	}
	return parseBlock(string(buf[:n]), lim)
}

// readErr turns an error reading inside the header block into ErrTruncated
// when the connection ended there.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return fmt.Errorf("scgi: reading header block: %w", err)
}

// readLength reads the netstring's "<digits>:" and checks the length
// against max as each digit arrives.
func readLength(br *bufio.Reader, max int) (int, error) {
	n, digits := 0, 0
	for {
		c, err := br.ReadByte()
		if err != nil {
			if digits == 0 && errors.Is(err, io.EOF) {
				return 0, io.EOF // nothing sent: a clean close
			}
			return 0, readErr(err)
		}
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && n == 0 {
				return 0, ErrLengthLeadingZero
			}
			digits++
			n = n*10 + int(c-'0')
			if n > max || digits > maxLengthDigits {
				return 0, fmt.Errorf("%w: more than %d bytes declared", ErrHeaderTooLarge, max)
			}
		case digits == 0:
			return 0, ErrBadLength
		case c == ':':
			return n, nil
		default:
			return 0, ErrMissingColon
		}
	}
}

// parseBlock splits the netstring's content into pairs and checks the
// rules of protocol.txt § 3.
func parseBlock(s string, lim Limits) (*Header, error) {
	maxHeaders := lim.maxHeaders()
	// Pairs hold two NULs: the count is known before anything is kept.
	pairs := strings.Count(s, "\x00") / 2
	if pairs > maxHeaders {
		return nil, fmt.Errorf("%w: more than %d", ErrTooManyHeaders, maxHeaders)
	}
	h := &Header{Names: make([]string, 0, pairs), Vars: make(map[string]string, pairs)}
	scgi := false
	for s != "" {
		i := strings.IndexByte(s, 0)
		if i < 0 {
			return nil, ErrUnterminatedPair
		}
		name := s[:i]
		s = s[i+1:]
		j := strings.IndexByte(s, 0)
		if j < 0 {
			return nil, ErrUnterminatedPair
		}
		value := s[:j]
		s = s[j+1:]
		switch {
		case name == "":
			return nil, ErrEmptyName
		case strings.IndexByte(name, '=') >= 0:
			return nil, fmt.Errorf("%w: %q", ErrInvalidName, name)
		}
		if len(h.Names) == 0 {
			if name != "CONTENT_LENGTH" {
				return nil, fmt.Errorf("%w: %q", ErrContentLengthNotFirst, name)
			}
			cl, err := parseContentLength(value, lim.maxContentLength())
			if err != nil {
				return nil, err
			}
			h.ContentLength = cl
		} else if _, dup := h.Vars[name]; dup {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateName, name)
		}
		if name == "SCGI" {
			if value != "1" {
				return nil, fmt.Errorf("%w: SCGI is %q", ErrNoSCGI, value)
			}
			scgi = true
		}
		h.Names = append(h.Names, name)
		h.Vars[name] = value
	}
	if len(h.Names) == 0 {
		return nil, ErrContentLengthNotFirst
	}
	if !scgi {
		return nil, ErrNoSCGI
	}
	return h, nil
}

// parseContentLength parses a CONTENT_LENGTH value: digits, no sign, no
// leading zero, at most max.
func parseContentLength(v string, max int64) (int64, error) {
	if v == "" || len(v) > 1 && v[0] == '0' {
		return 0, fmt.Errorf("%w: %q", ErrInvalidContentLength, v)
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: %q", ErrInvalidContentLength, v)
		}
		n = n*10 + int64(c-'0')
		if n > max {
			return 0, fmt.Errorf("%w: %s bytes, over %d", ErrContentTooLarge, v, max)
		}
	}
	return n, nil
}

// ErrInvalidParam is returned by [AppendRequest] for a parameter that
// cannot be encoded: no '=', an empty name, a NUL in the name or value, a
// name given twice, an SCGI value other than "1", or a CONTENT_LENGTH that
// is not a clean decimal number.
var ErrInvalidParam = errors.New("scgi: invalid request parameter")

// AppendRequest appends the header block of an SCGI request to dst: the
// netstring of params, given as "NAME=value" strings (as cgi.AppendEnv
// produces them), with CONTENT_LENGTH moved first ("0" if absent or empty)
// and SCGI=1 added after it if absent (protocol.txt § 3). The other pairs
// keep their order. The body, exactly CONTENT_LENGTH bytes, is for the
// caller to send next.
func AppendRequest(dst []byte, params []string) ([]byte, error) {
	return appendRequest(dst, params, -1)
}

// appendRequest is AppendRequest with CONTENT_LENGTH given as cl when
// cl >= 0, replacing any CONTENT_LENGTH of params.
func appendRequest(dst []byte, params []string, cl int64) ([]byte, error) {
	clValue, scgi := "", false
	size := 0
	for i, kv := range params {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.IndexByte(name, 0) >= 0 || strings.IndexByte(value, 0) >= 0 {
			return dst, fmt.Errorf("%w: %q", ErrInvalidParam, kv)
		}
		if dupName(params[:i], name) {
			return dst, fmt.Errorf("%w: %s given twice", ErrInvalidParam, name)
		}
		switch name {
		case "CONTENT_LENGTH":
			clValue = value
			continue
		case "SCGI":
			if value != "1" {
				return dst, fmt.Errorf("%w: SCGI=%q; want 1", ErrInvalidParam, value)
			}
			scgi = true
		}
		size += len(kv) + 1 // name NUL value NUL: the '=' becomes a NUL
	}
	switch {
	case cl >= 0:
		clValue = strconv.FormatInt(cl, 10)
	case clValue == "":
		clValue = "0"
	default:
		if _, err := parseContentLength(clValue, 1<<62); err != nil {
			return dst, fmt.Errorf("%w: %w", ErrInvalidParam, err)
		}
	}
	size += len("CONTENT_LENGTH") + len(clValue) + 2
	if !scgi {
		size += len("SCGI\x001\x00")
	}
	// One allocation for the whole netstring: its length's digits (at most
	// 20), the colon, the block and the comma.
	dst = slices.Grow(dst, 20+1+size+1)
	dst = strconv.AppendInt(dst, int64(size), 10)
	dst = append(dst, ':')
	dst = append(dst, "CONTENT_LENGTH\x00"...)
	dst = append(dst, clValue...)
	dst = append(dst, 0)
	if !scgi {
		dst = append(dst, "SCGI\x001\x00"...)
	}
	for _, kv := range params {
		name, value, _ := strings.Cut(kv, "=")
		if name == "CONTENT_LENGTH" {
			continue
		}
		dst = append(dst, name...)
		dst = append(dst, 0)
		dst = append(dst, value...)
		dst = append(dst, 0)
	}
	return append(dst, ','), nil
}

// dupName reports whether a "NAME=value" of before has the given name. The
// quadratic scan is cheaper than a map for the few dozen variables of a
// request.
func dupName(before []string, name string) bool {
	for _, kv := range before {
		if len(kv) > len(name) && kv[len(name)] == '=' && kv[:len(name)] == name {
			return true
		}
	}
	return false
}
