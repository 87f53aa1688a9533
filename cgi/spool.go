package cgi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/ferrygw/ferry/internal/defaults"
)

// ErrBodyTooLarge is returned when a request body exceeds the configured
// limit. It is a [*StatusError]: a gateway answers 413 Content Too Large.
var ErrBodyTooLarge error = &StatusError{Status: http.StatusRequestEntityTooLarge, Err: errors.New("cgi: request body too large")}

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

// BodyLimits bounds the request bodies a gateway passes on.
type BodyLimits struct {
	// Max bounds a body; larger ones get 413. If zero or negative,
	// DefaultMaxRequestBody (1 GiB).
	Max int64
	// Memory is how much of a spooled body stays in memory before the rest
	// goes to a temporary file in TempDir. If zero or negative,
	// DefaultSpoolMemory.
	Memory int64
	// TempDir holds spooled bodies. If empty, os.TempDir().
	TempDir string
}

// ExactBody prepares r's body for a back that must be told its exact length
// in CONTENT_LENGTH (a CGI script, a FastCGI or SCGI application). A body of
// known length is passed as is; one of unknown length (chunked), or any body
// when spool is set, is read first into a [Spool]. It returns the request to
// describe (its ContentLength exact), the body to send (nil for none) and the
// spool, which the caller must Close when done (nil if none). On failure it
// returns r itself and a [*StatusError]: 413 past lim.Max, 400 for a broken
// upload.
func ExactBody(r *http.Request, lim BodyLimits, spool bool) (*http.Request, io.Reader, *Spool, error) {
	max := defaults.Or(lim.Max, DefaultMaxRequestBody)
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return r, nil, nil, nil
	}
	if r.ContentLength > max {
		return r, nil, nil, fmt.Errorf("%w: Content-Length %d", ErrBodyTooLarge, r.ContentLength)
	}
	if r.ContentLength > 0 && !spool {
		return r, r.Body, nil, nil
	}
	sp, err := SpoolBody(r.Body, defaults.Or(lim.Memory, DefaultSpoolMemory), max, lim.TempDir)
	if err != nil {
		if !errors.Is(err, ErrBodyTooLarge) {
			err = statusError(http.StatusBadRequest, err)
		}
		return r, nil, nil, err
	}
	r2 := *r
	r2.ContentLength = sp.Size()
	if sp.Size() == 0 {
		return &r2, nil, sp, nil
	}
	return &r2, sp.Reader(), sp, nil
}
