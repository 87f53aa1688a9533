package bridge

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// logFile is a log file that can be opened again under its name: once
// logrotate has renamed it, reopen makes the lines go to a new file of
// that name (SIGUSR1, as nginx and Apache take it). It opens on first use,
// and is safe for concurrent use: each Write is one write(2) on a file
// opened for appending, so concurrent lines do not interleave.
type logFile struct {
	name string

	mu     sync.RWMutex // writers share it; open, reopen and close take it alone
	f      *os.File
	closed bool
}

// errLogClosed is what writes to a closed log file get.
var errLogClosed = errors.New("bridge: log file closed")

// open opens the file if it is not open yet.
func (l *logFile) open() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errLogClosed
	}
	if l.f != nil {
		return nil
	}
	f, err := openLog(l.name)
	if err != nil {
		return err
	}
	l.f = f
	return nil
}

// openLog opens name for appending, creating it with mode 0640.
func openLog(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("bridge: access log: %w", err)
	}
	return f, nil
}

// reopen opens the file again under its name and closes the old one. If
// the name cannot be opened, lines go on to the old file.
func (l *logFile) reopen() error {
	f, err := openLog(l.name)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	if l.closed {
		l.mu.Unlock()
		f.Close()
		return errLogClosed
	}
	l.f = f
	l.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// Write writes p to the file, opening it first if need be.
func (l *logFile) Write(p []byte) (int, error) {
	l.mu.RLock()
	if f := l.f; f != nil {
		n, err := f.Write(p)
		l.mu.RUnlock()
		return n, err
	}
	l.mu.RUnlock()
	if err := l.open(); err != nil {
		return 0, err
	}
	return l.Write(p)
}

// close closes the file; later writes fail.
func (l *logFile) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// openLogs opens the access log file, if there is one, so that a file
// that cannot be written is an error at start.
func (s *Server) openLogs() error {
	if s.access == nil || s.access.file == nil {
		return nil
	}
	return s.access.file.open()
}

// closeLogs closes the access log file, if there is one.
func (s *Server) closeLogs() {
	if s.access != nil && s.access.file != nil {
		s.access.file.close() // nothing is written after this; a close error cannot lose a line
	}
}
