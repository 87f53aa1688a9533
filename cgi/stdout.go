package cgi

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// aLongTimeAgo is a deadline in the past, set to wake a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// scriptStdout reads a script's stdout pipe. Its end comes when every
// process holding the pipe's write end has closed it, or when end is
// called: a background process the script left holding its stdout must
// not keep the response open once the script itself has exited.
type scriptStdout struct {
	f     *os.File
	ended atomic.Bool
	mu    sync.Mutex // orders end against SetReadDeadline, so that end's deadline stays
}

// Read reads from the pipe. Once end has been called, it returns what the
// pipe still holds without waiting, then io.EOF.
func (s *scriptStdout) Read(p []byte) (int, error) {
	if !s.ended.Load() {
		n, err := s.f.Read(p)
		if !errors.Is(err, os.ErrDeadlineExceeded) || !s.ended.Load() {
			return n, err
		}
		if n > 0 {
			return n, nil
		}
	}
	return s.drain(p)
}

// drain reads what the pipe holds, never waiting: at its end, io.EOF.
func (s *scriptStdout) drain(p []byte) (int, error) {
	rc, err := s.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	_ = s.f.SetReadDeadline(time.Time{}) // RawConn.Read checks the deadline before calling us; a failure surfaces there
	s.mu.Unlock()
	var n int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, rerr = syscall.Read(int(fd), p)
		return true // done, whatever the pipe held
	})
	switch {
	case err != nil:
		return 0, err
	case errors.Is(rerr, syscall.EAGAIN), rerr == nil && n == 0:
		return 0, io.EOF
	case rerr != nil:
		return 0, rerr
	}
	return n, nil
}

// SetReadDeadline bounds the next reads, until end is called; after it,
// reads never wait.
func (s *scriptStdout) SetReadDeadline(t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended.Load() {
		return nil
	}
	return s.f.SetReadDeadline(t)
}

// end makes the output end with what the pipe holds now, waking a
// blocked Read.
func (s *scriptStdout) end() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ended.Swap(true) {
		_ = s.f.SetReadDeadline(aLongTimeAgo) // a closed pipe: the read has returned already
	}
}
