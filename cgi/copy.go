package cgi

import (
	"errors"
	"io"
	"net/http"
	"sync"
)

// bufPool holds the buffers response bodies are copied through.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// WriteHeader sends resp's status and header fields to w. Fields already set
// in w.Header() are replaced by the script's.
func WriteHeader(w http.ResponseWriter, resp *Response) {
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	w.WriteHeader(resp.Status)
}

// CopyResponse sends resp and then the body from body to w, flushing after
// every read so that output streams to the client as the script writes it. It
// returns the number of body bytes written. An error reading body is returned
// as is; an error writing to w is wrapped in a *[ClientError].
func CopyResponse(w http.ResponseWriter, resp *Response, body io.Reader) (int64, error) {
	WriteHeader(w, resp)
	if br, ok := body.(interface{ Buffered() int }); !ok || br.Buffered() == 0 {
		// No body bytes are at hand: send the header block now, so that the
		// client learns the status while the script works on the body.
		if err := http.NewResponseController(w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return 0, &ClientError{err}
		}
	}
	return copyFlush(w, body)
}

// ClientError reports that writing to the client failed: the client went away.
type ClientError struct{ Err error }

func (e *ClientError) Error() string { return "cgi: writing to client: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ClientError) Unwrap() error { return e.Err }

// copyFlush copies src to w, flushing w after every read.
func copyFlush(w http.ResponseWriter, src io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	canFlush := true
	var n int64
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			nw, werr := w.Write(buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, &ClientError{werr}
			}
			if canFlush {
				if ferr := rc.Flush(); ferr != nil {
					if errors.Is(ferr, http.ErrNotSupported) {
						canFlush = false
					} else {
						return n, &ClientError{ferr}
					}
				}
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
