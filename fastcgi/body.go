package fastcgi

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// ErrBodyTooLarge is the error a request body read returns once the web
// server has sent more than [Server.MaxRequestBody] bytes of STDIN.
var ErrBodyTooLarge = errors.New("fastcgi: request body too large")

// ErrRequestAborted is the error a request body read returns after the web
// server aborted the request (ABORT_REQUEST) or closed the connection.
var ErrRequestAborted = errors.New("fastcgi: request aborted")

// bodyBuffer carries a stream from a connection's read loop to its
// consumer without ever blocking the read loop, so a consumer that reads
// slowly cannot stall the other requests on a multiplexed connection: data
// is kept in memory up to maxMem, then in an unlinked temporary file, up to
// maxTotal. The server uses it for STDIN and DATA, the multiplexing client
// for STDOUT.
type bodyBuffer struct {
	maxMem, maxTotal int64
	tempDir          string
	what             string // the stream, for errors: "request body"
	tooLarge         error  // the error past maxTotal

	mu     sync.Mutex // guards everything below
	cond   sync.Cond
	chunks [][]byte
	mem    int64
	file   *os.File
	wOff   int64 // file write offset
	rOff   int64 // file read offset
	total  int64
	eof    bool  // the stream ended (empty record)
	err    error // set when the stream failed: abort, too large, spill failure
	closed bool  // the reader is done: further data is dropped
}

func newBodyBuffer(maxMem, maxTotal int64, tempDir string) *bodyBuffer {
	b := &bodyBuffer{maxMem: maxMem, maxTotal: maxTotal, tempDir: tempDir, what: "request body", tooLarge: ErrBodyTooLarge}
	b.cond.L = &b.mu
	return b
}

// write appends p, which the caller may reuse afterwards.
func (b *bodyBuffer) write(p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || b.err != nil || b.eof {
		return
	}
	b.total += int64(len(p))
	if b.total > b.maxTotal {
		b.fail(fmt.Errorf("%w: more than %d bytes", b.tooLarge, b.maxTotal))
		return
	}
	if b.file == nil && b.mem+int64(len(p)) <= b.maxMem {
		b.chunks = append(b.chunks, append([]byte(nil), p...))
		b.mem += int64(len(p))
		b.cond.Broadcast()
		return
	}
	if b.file == nil {
		f, err := os.CreateTemp(b.tempDir, "ferry-fcgi-body-*")
		if err != nil {
			b.fail(fmt.Errorf("fastcgi: spooling %s: %w", b.what, err))
			return
		}
		os.Remove(f.Name()) // the open descriptor keeps the data
		b.file = f
	}
	if _, err := b.file.WriteAt(p, b.wOff); err != nil {
		b.fail(fmt.Errorf("fastcgi: spooling %s: %w", b.what, err))
		return
	}
	b.wOff += int64(len(p))
	b.cond.Broadcast()
}

// end marks the end of the stream.
func (b *bodyBuffer) end() {
	b.mu.Lock()
	b.eof = true
	b.cond.Broadcast()
	b.mu.Unlock()
}

// abort makes reads fail with err.
func (b *bodyBuffer) abort(err error) {
	b.mu.Lock()
	if !b.eof || b.err == nil {
		b.fail(err)
	}
	b.mu.Unlock()
}

func (b *bodyBuffer) fail(err error) {
	if b.err == nil {
		b.err = err
	}
	b.chunks, b.mem = nil, 0
	b.cond.Broadcast()
}

// Read reads the stream in order: memory first, then the file.
func (b *bodyBuffer) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for {
		if b.err != nil {
			return 0, b.err
		}
		if b.closed {
			return 0, fmt.Errorf("fastcgi: read on closed %s", b.what)
		}
		if len(b.chunks) > 0 {
			n := copy(p, b.chunks[0])
			b.chunks[0] = b.chunks[0][n:]
			b.mem -= int64(n)
			if len(b.chunks[0]) == 0 {
				b.chunks[0] = nil
				b.chunks = b.chunks[1:]
			}
			return n, nil
		}
		if b.file != nil && b.rOff < b.wOff {
			n, err := b.file.ReadAt(p[:min(int64(len(p)), b.wOff-b.rOff)], b.rOff)
			b.rOff += int64(n)
			if err != nil && err != io.EOF {
				return n, fmt.Errorf("fastcgi: reading spooled %s: %w", b.what, err)
			}
			return n, nil
		}
		if b.eof {
			return 0, io.EOF
		}
		b.cond.Wait()
	}
}

// hasData reports whether a Read would return without waiting. b.mu must
// be held.
func (b *bodyBuffer) hasData() bool {
	return len(b.chunks) > 0 || (b.file != nil && b.rOff < b.wOff) || b.eof || b.err != nil
}

// ready reports whether a Read would return without waiting.
func (b *bodyBuffer) ready() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hasData()
}

// wait blocks until a Read would return without waiting, and returns the
// stream's error, if it failed.
func (b *bodyBuffer) wait() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.hasData() && !b.closed {
		b.cond.Wait()
	}
	return b.err
}

// Close ends reading: later data is dropped and the temporary file goes.
func (b *bodyBuffer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	b.chunks, b.mem = nil, 0
	if b.file != nil {
		b.file.Close()
		b.file = nil
	}
	b.cond.Broadcast()
	return nil
}
