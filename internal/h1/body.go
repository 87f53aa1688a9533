package h1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"sync"
)

// maxChunkLine bounds a chunk-size line, as net/http's maxLineLength.
const maxChunkLine = 4096

// errMalformedChunked is a chunked body whose framing is broken: a bad
// chunk size, a line end other than CRLF, data longer than its size.
var errMalformedChunked = errors.New("h1: malformed chunked encoding")

// body is a request's body: Content-Length bytes, or chunked, from the
// connection's reader. Reads after Close fail with
// http.ErrBodyReadAfterClose; after an error, they fail with it.
type body struct {
	c   *conn
	w   *response // sends 100 Continue at the first read, if asked for
	req *http.Request

	mu      sync.Mutex
	chunked bool
	remain  int64 // bytes left: of the body, or of the current chunk
	inChunk bool  // chunked: after a chunk-size line, in its data
	owed    bool  // chunked: the CRLF after a chunk's data is still to read
	sawEOF  bool
	closed  bool
	early   bool // closed with more left than the server reads
	err     error
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	return b.readLocked(p)
}

// Close ends the body for the handler: later reads fail. As net/http's,
// it reads what is left if that is at most 256 KiB, to keep the
// connection; otherwise the connection closes after the response.
func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if !b.sawEOF && b.err == nil {
		if b.unreadLocked() > maxPostHandlerRead {
			b.early = true
		} else if !b.discardLocked(maxPostHandlerRead) {
			b.early = true
		}
	}
	return nil
}

// bodyState is where a body stands when the response begins.
type bodyState int

const (
	bodyAllRead     bodyState = iota // read to its end
	bodyLeft                         // some left to read
	bodyClosedEarly                  // closed, or failed, before its end
)

func (b *body) state() bodyState {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.sawEOF:
		return bodyAllRead
	case b.closed || b.early || b.err != nil:
		return bodyClosedEarly
	}
	return bodyLeft
}

func (b *body) eof() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.sawEOF
}

func (b *body) failed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err != nil
}

func (b *body) unread() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.unreadLocked()
}

// unfinished reports whether the body has neither ended nor failed: its
// client may still be sending it.
func (b *body) unfinished() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.sawEOF && b.err == nil
}

// discardRest reads what is left of the body after the response, up to
// 256 KiB, and reports whether the connection can carry another request.
func (b *body) discardRest() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.sawEOF:
		return true
	case b.err != nil || b.early:
		return false
	case b.unreadLocked() > maxPostHandlerRead:
		return false
	}
	return b.discardLocked(maxPostHandlerRead + 1)
}

func (b *body) readLocked(p []byte) (int, error) {
	if b.sawEOF {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.w != nil {
		b.w.sendContinue()
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	if b.chunked {
		n, err = b.readChunked(p)
	} else {
		n, err = b.readFixed(p)
	}
	if err == io.EOF {
		b.sawEOF = true
		b.c.bodyEnded()
	} else if err != nil {
		b.err = err
		b.c.bodyEnded()
	}
	return n, err
}

func (b *body) readFixed(p []byte) (int, error) {
	if b.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := b.c.br.Read(p)
	b.remain -= int64(n)
	switch {
	case b.remain == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *body) readChunked(p []byte) (int, error) {
	br := b.c.br
	if b.owed {
		if err := chunkEnd(br); err != nil {
			return 0, err
		}
		b.owed = false
	}
	for !b.inChunk {
		size, err := chunkSize(br)
		if err != nil {
			return 0, err
		}
		if size == 0 {
			return 0, b.readTrailer()
		}
		b.remain, b.inChunk = size, true
	}
	if int64(len(p)) > b.remain {
		p = p[:b.remain]
	}
	n, err := br.Read(p)
	b.remain -= int64(n)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	if err != nil {
		return n, err
	}
	if b.remain == 0 {
		b.inChunk = false
		// The chunk's data ends with CRLF, exactly. If it is not in
		// the buffer yet, the next read takes it.
		if br.Buffered() >= 2 {
			if err := chunkEnd(br); err != nil {
				return n, err
			}
		} else {
			b.owed = true
		}
	}
	return n, nil
}

// readTrailer reads the trailer fields after the last chunk into the
// request's Trailer, as net/http does, and returns io.EOF.
func (b *body) readTrailer() error {
	h := &headReader{br: b.c.br, budget: b.c.srv.maxHeaderBytes()}
	hdr, err := readFields(h, true)
	if err != nil {
		if he, ok := isHeadError(err); ok && he.refuse != "" {
			b.c.refuse(he.refuse)
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if len(hdr) > 0 {
		if b.req.Trailer == nil {
			b.req.Trailer = hdr
		} else {
			for k, v := range hdr {
				b.req.Trailer[k] = v
			}
		}
	}
	return io.EOF
}

// chunkSize reads a chunk-size line: hexadecimal digits (at most 16),
// optional whitespace and extensions, and CRLF (a bare LF is refused, as
// net/http refuses it).
func chunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) >= maxChunkLine {
		return 0, errMalformedChunked
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return 0, errMalformedChunked
	}
	line = line[:len(line)-2]
	for i, c := range line {
		if c == ';' {
			line = line[:i]
			break
		}
	}
	line = trimOWS(line)
	if len(line) == 0 || len(line) > 16 {
		return 0, errMalformedChunked
	}
	var n uint64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, errMalformedChunked
		}
		n = n<<4 | uint64(c)
	}
	if n > 1<<62 {
		return 0, errMalformedChunked
	}
	return int64(n), nil
}

// chunkEnd reads the CRLF after a chunk's data.
func chunkEnd(br *bufio.Reader) error {
	crlf, err := br.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return errMalformedChunked
	}
	br.Discard(2)
	return nil
}

// unread says how much of the body is known to be left: -1 if unknown
// (chunked). b.mu is held.
func (b *body) unreadLocked() int64 {
	if b.chunked {
		return -1
	}
	return b.remain
}

// discard reads up to n bytes of what is left of the body, for the
// server: it reports whether the body's end came.
func (b *body) discard(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.discardLocked(n)
}

func (b *body) discardLocked(n int64) bool {
	var buf [2048]byte
	for n > 0 {
		if b.sawEOF {
			return true
		}
		if b.err != nil {
			return false
		}
		m, err := b.readLocked(buf[:min(int64(len(buf)), n)])
		n -= int64(m)
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
	return b.sawEOF
}
