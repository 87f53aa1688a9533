package cgi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrBodyTooLarge is returned when a request body exceeds the configured
// limit: a gateway answers 413 Content Too Large.
var ErrBodyTooLarge = errors.New("cgi: request body too large")

// Spool holds a request body of unknown length (chunked transfer coding) so
// that CONTENT_LENGTH can be given exactly, as RFC 3875 § 4.1.2 requires: in
// memory up to a threshold, then in an unlinked temporary file.
type Spool struct {
	mem  []byte
	file *os.File
	size int64
}

// SpoolBody reads r to EOF into a Spool, keeping up to memMax bytes in
// memory and the rest in a temporary file in dir (os.TempDir if empty). It
// fails with [ErrBodyTooLarge] after more than max bytes. The caller must
// Close the Spool.
func SpoolBody(r io.Reader, memMax, max int64, dir string) (*Spool, error) {
	s := &Spool{}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, min(memMax, max)+1))
	if err != nil {
		return nil, fmt.Errorf("cgi: reading request body: %w", err)
	}
	if n <= memMax && n <= max {
		s.mem, s.size = buf.Bytes(), n
		return s, nil
	}
	if n > max {
		return nil, ErrBodyTooLarge
	}
	f, err := os.CreateTemp(dir, "ferry-body-*")
	if err != nil {
		return nil, fmt.Errorf("cgi: spooling request body: %w", err)
	}
	// Unlinked at once: the open descriptor keeps the data, and nothing is
	// left behind if ferry dies.
	os.Remove(f.Name())
	s.file = f
	if _, err := f.Write(buf.Bytes()); err != nil {
		s.Close()
		return nil, fmt.Errorf("cgi: spooling request body: %w", err)
	}
	m, err := io.Copy(f, io.LimitReader(r, max-n+1))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("cgi: spooling request body: %w", err)
	}
	s.size = n + m
	if s.size > max {
		s.Close()
		return nil, ErrBodyTooLarge
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		s.Close()
		return nil, fmt.Errorf("cgi: spooling request body: %w", err)
	}
	return s, nil
}

// Size is the body's length in bytes.
func (s *Spool) Size() int64 { return s.size }

// File returns the temporary file holding the body, positioned at its start,
// or nil when the body is in memory.
func (s *Spool) File() *os.File { return s.file }

// Reader returns a reader over the whole body.
func (s *Spool) Reader() io.Reader {
	if s.file != nil {
		return s.file
	}
	return bytes.NewReader(s.mem)
}

// Close releases the temporary file, if any.
func (s *Spool) Close() error {
	if s.file != nil {
		return s.file.Close()
	}
	return nil
}
