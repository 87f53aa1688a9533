package bridge

import (
	"bytes"
	"strconv"
)

// http1Framer follows the HTTP/1.1 messages a client sends on one
// connection, byte for byte as net/http's server reads them, and refuses
// those whose framing RFC 9112 says to treat as an attack: net/http reads
// a request with both Content-Length and Transfer-Encoding as chunked and
// keeps the connection open, so a pipelined request hidden in what a
// front proxy took for the body is served (§ 6.1: "ought to be handled as
// an error"; nginx answers 400); it unfolds obs-fold lines (§ 5.2: reject,
// as nginx does); and it ignores Transfer-Encoding in an HTTP/1.0 request
// (§ 6.1: the framing is faulty). Everything else net/http gets right
// (two different Content-Lengths: 400 and close; bad chunk sizes or bare
// LF in chunked framing: the body fails and the connection closes; bare
// LF in headers: accepted, as § 2.2 allows), so the framer only needs to
// stay in step with the messages net/http accepts; where net/http fails a
// message it also closes the connection, and the framer stops checking
// ("dead"). FuzzHTTP1Framer holds it to net/http's own reader.
//
// The framer knows where each body is, so the HTTP front applies its body
// timeout there and nowhere else. It holds no message: a few bytes of the
// request line and of the Content-Length and Transfer-Encoding fields.
type http1Framer struct {
	st    framerState
	dead  bool // not checking: net/http fails or has hijacked the connection
	heads int  // header blocks passed

	// The request line: the method's first bytes, and the protocol.
	method   [8]byte
	nMethod  int
	spaces   int
	proto    [9]byte
	nProto   int
	lastPOST bool // net/http skips up to 4 CR or LF after a POST (RFC 7230 § 3.5)
	skip     int  // CR or LF bytes still skippable before this request line
	begun    bool // a byte of the request line has come
	// For the log of a head net/http fails (see [headWatch]): the last
	// request line begun, up to maxLoggedLine bytes and kept until the
	// next begins; how many have begun; and why net/http fails the head,
	// when the framer sees it does.
	reqLine []byte
	lines   int
	failed  string

	// The header block.
	name   [18]byte // the field name, lower case, while it is short enough
	nName  int
	field  fieldKind
	value  []byte   // the value of a Content-Length or Transfer-Encoding field
	cls    []string // Content-Length values
	tes    []string // Transfer-Encoding values
	http10 bool

	// The body.
	remain uint64 // bytes of body (or chunk data) still to come
	line   []byte // a chunk-size line so far
	crlf   int    // bytes of the CRLF after chunk data seen
}

type framerState uint8

const (
	stRequestLine  framerState = iota // before or in the request line
	stLineStart                       // at the start of a header line
	stName                            // in a field name
	stValue                           // in a field value
	stBlockEndLF                      // after the CR of the empty line
	stBody                            // in a Content-Length body
	stChunkLine                       // in a chunk-size line
	stChunkData                       // in chunk data
	stChunkCRLF                       // in the CRLF after chunk data
	stTrailerStart                    // at the start of a trailer line
	stTrailer                         // in a trailer line
	stTrailerLF                       // after the CR of the empty line ending the trailers
)

type fieldKind uint8

const (
	fieldOther fieldKind = iota
	fieldCL
	fieldTE
)

// maxFramingValue bounds a Content-Length or Transfer-Encoding value: a
// longer one is refused (no client needs it).
const maxFramingValue = 128

// maxChunkLine is net/http's bound on a chunk-size line.
const maxChunkLine = 4096

// failedRequestLine is the framer's failed for a request line net/http
// refuses.
const failedRequestLine = "invalid request line"

// inHead reports whether a request head has begun and is not whole.
func (f *http1Framer) inHead() bool {
	return !f.dead && ((f.st == stRequestLine && f.begun) || (f.st > stRequestLine && f.st < stBody))
}

// inBody reports whether the next byte belongs to a request body.
func (f *http1Framer) inBody() bool {
	return !f.dead && f.st >= stBody
}

// scan follows b, the next bytes read from the client. It returns how many
// of them net/http may read and, if the message must be refused, why: the
// caller then gives net/http a poisoned line instead of the rest, which it
// answers with 400 and a close.
func (f *http1Framer) scan(b []byte) (pass int, refused string) {
	i := 0
	for i < len(b) && !f.dead {
		c := b[i]
		switch f.st {
		case stRequestLine:
			if f.skip > 0 && !f.begun && (c == '\r' || c == '\n') {
				f.skip--
				break
			}
			if !f.begun {
				f.lines++
				f.reqLine, f.failed = f.reqLine[:0], ""
			}
			f.skip, f.begun = 0, true
			if c == '\n' {
				if !f.requestLine() {
					f.dead, f.failed = true, failedRequestLine // net/http answers 400 (or 505) and closes
					break
				}
				f.st = stLineStart
				break
			}
			if len(f.reqLine) < maxLoggedLine {
				f.reqLine = append(f.reqLine, c)
			}
			switch {
			case c == ' ':
				f.spaces++
			case f.spaces == 0 && f.nMethod < len(f.method):
				f.method[f.nMethod] = c
				f.nMethod++
			case f.spaces == 0:
				f.nMethod = len(f.method) + 1 // too long to be POST
			case f.spaces == 2 && f.nProto < len(f.proto):
				f.proto[f.nProto] = c
				f.nProto++
			case f.spaces == 2:
				f.nProto = len(f.proto) + 1
			}
		case stLineStart:
			switch c {
			case ' ', '\t':
				// RFC 9112 § 5.2: a server MUST reject obs-fold.
				return i, "obs-fold (a header line starting with a space or tab)"
			case '\r':
				if why := f.endBlock(); why != "" {
					return i, why
				}
				f.st = stBlockEndLF
			case '\n':
				if why := f.endBlock(); why != "" {
					return i, why
				}
				f.startBody()
			default:
				f.nName, f.field = 0, fieldOther
				f.st = stName
				continue // the byte is the name's first
			}
		case stName:
			switch {
			case c == ':':
				f.field = f.fieldKind()
				f.value = f.value[:0]
				f.st = stValue
			case c == '\n':
				f.dead, f.failed = true, "invalid header line" // no colon: net/http answers 400 and closes
			case f.nName < len(f.name):
				f.name[f.nName] = lower(c)
				f.nName++
			default:
				f.nName = len(f.name) + 1
			}
		case stValue:
			if f.field == fieldOther {
				// Skip to the end of the line in one step.
				j := bytes.IndexByte(b[i:], '\n')
				if j < 0 {
					i = len(b)
					continue
				}
				i += j
				c = '\n'
			}
			if c == '\n' {
				v := string(bytes.Trim(bytes.TrimSuffix(f.value, []byte("\r")), " \t"))
				switch f.field {
				case fieldCL:
					f.cls = append(f.cls, v)
				case fieldTE:
					f.tes = append(f.tes, v)
				}
				f.st = stLineStart
				break
			}
			if len(f.value) == maxFramingValue {
				return i, "a Content-Length or Transfer-Encoding field over 128 bytes"
			}
			f.value = append(f.value, c)
		case stBlockEndLF:
			if c != '\n' {
				f.dead, f.failed = true, "invalid header line" // a bare CR: net/http answers 400 and closes
				break
			}
			f.startBody()
		case stBody:
			n := min(uint64(len(b)-i), f.remain)
			f.remain -= n
			i += int(n)
			if f.remain == 0 {
				f.st = stRequestLine
			}
			continue
		case stChunkLine:
			if c != '\n' {
				if len(f.line) >= maxChunkLine {
					f.dead = true // net/http: "header line too long"
					break
				}
				f.line = append(f.line, c)
				break
			}
			size, ok := chunkSize(f.line)
			if !ok {
				f.dead = true // net/http fails the body and closes
				break
			}
			f.line = f.line[:0]
			if size == 0 {
				f.st = stTrailerStart
				break
			}
			f.remain = size
			f.st = stChunkData
		case stChunkData:
			n := min(uint64(len(b)-i), f.remain)
			f.remain -= n
			i += int(n)
			if f.remain == 0 {
				f.st, f.crlf = stChunkCRLF, 0
			}
			continue
		case stChunkCRLF:
			if c != "\r\n"[f.crlf] {
				f.dead = true // net/http: "malformed chunked encoding"
				break
			}
			if f.crlf++; f.crlf == 2 {
				f.st = stChunkLine
			}
		case stTrailerStart:
			switch c {
			case ' ', '\t':
				return i, "obs-fold in the trailer of a chunked body"
			case '\r':
				f.st = stTrailerLF
			case '\n':
				f.st = stRequestLine
			default:
				f.st = stTrailer
			}
		case stTrailer:
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				i = len(b)
				continue
			}
			i += j
			f.st = stTrailerStart
		case stTrailerLF:
			if c != '\n' {
				f.dead = true
				break
			}
			f.st = stRequestLine
		}
		i++
	}
	if f.dead {
		return len(b), ""
	}
	return i, ""
}

// requestLine checks the request line just read, as net/http parses it:
// METHOD SP TARGET SP HTTP/1.x. It reports false for anything net/http
// refuses.
func (f *http1Framer) requestLine() bool {
	n := min(f.nProto, len(f.proto))
	p := f.proto[:n]
	if n > 0 && p[n-1] == '\r' {
		p = p[:n-1]
	}
	if f.spaces < 2 || f.nProto > len(f.proto) || len(p) != len("HTTP/1.x") || string(p[:7]) != "HTTP/1." || p[7] < '0' || p[7] > '9' {
		return false
	}
	f.http10 = p[7] == '0'
	f.lastPOST = f.nMethod == 4 && string(f.method[:4]) == "POST"
	f.cls, f.tes = f.cls[:0], f.tes[:0]
	return true
}

// fieldKind says whether the field name just read frames the body.
func (f *http1Framer) fieldKind() fieldKind {
	if f.nName > len(f.name) {
		return fieldOther
	}
	switch string(f.name[:f.nName]) {
	case "content-length":
		return fieldCL
	case "transfer-encoding":
		return fieldTE
	}
	return fieldOther
}

// endBlock checks the framing of a complete header block and says why it
// is refused, if it is; otherwise it works out the body as net/http does
// (RFC 9112 § 6.3).
func (f *http1Framer) endBlock() string {
	switch {
	case len(f.tes) > 0 && len(f.cls) > 0:
		return "Content-Length with Transfer-Encoding (RFC 9112 § 6.1)"
	case len(f.tes) > 0 && f.http10:
		return "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 § 6.1)"
	case len(f.tes) > 0:
		if len(f.tes) != 1 || !equalFold(f.tes[0], "chunked") {
			f.dead = true // net/http answers 501 and closes
		}
		f.remain = 0
	case len(f.cls) > 0:
		for _, v := range f.cls[1:] {
			if v != f.cls[0] {
				f.dead = true // net/http answers 400 and closes
				return ""
			}
		}
		n, err := strconv.ParseUint(f.cls[0], 10, 63)
		if err != nil {
			f.dead = true // as above
			return ""
		}
		f.remain = n
	default:
		f.remain = 0
	}
	return ""
}

// startBody moves past the header block, to the body or the next request.
func (f *http1Framer) startBody() {
	f.heads++
	chunked := len(f.tes) > 0
	switch {
	case chunked:
		f.st = stChunkLine
		f.line = f.line[:0]
	case f.remain > 0:
		f.st = stBody
	default:
		f.st = stRequestLine
	}
	f.nextRequest()
}

// nextRequest resets the request line's state.
func (f *http1Framer) nextRequest() {
	f.nMethod, f.spaces, f.nProto, f.begun = 0, 0, 0, false
	f.skip = 0
	if f.lastPOST {
		f.skip = 4
	}
}

// chunkSize parses a chunk-size line (without its LF) as net/http does:
// it must end in CR with no other CR; extensions after ';' are dropped;
// at most 16 hex digits.
func chunkSize(line []byte) (uint64, bool) {
	if len(line) == 0 || line[len(line)-1] != '\r' || bytes.IndexByte(line, '\r') != len(line)-1 {
		return 0, false
	}
	line = bytes.TrimRight(line[:len(line)-1], " \t")
	line, _, _ = bytes.Cut(line, []byte(";"))
	if len(line) == 0 || len(line) > 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(line), 16, 64)
	return n, err == nil
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// equalFold is strings.EqualFold for ASCII.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}
