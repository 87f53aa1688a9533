package cgi

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// bufPool holds the buffers response bodies are copied through.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// flushDelay is how long output may wait for more before it is flushed to the
// client. A script that writes its whole response and exits within it gets a
// single write with a Content-Length; one that pauses mid-output is flushed
// after it, so streaming works.
const flushDelay = 2 * time.Millisecond

// WriteHeader sends resp's status and header fields to w. Fields already set
// in w.Header() are replaced by the script's.
func WriteHeader(w http.ResponseWriter, resp *Response) {
	setHeader(w, resp)
	w.WriteHeader(resp.Status)
}

// setHeader sets resp's header fields in w.Header(), replacing those
// already there.
func setHeader(w http.ResponseWriter, resp *Response) {
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	noSniff(h)
}

// noSniff keeps a response without a Content-Type without one: RFC 3875
// § 6.3.1 says the server "SHOULD NOT attempt to determine the correct
// content type", and a sniffed text/html would make a script's text an
// HTML page. A nil value stops net/http's sniffing, and ours
// ([ResponseWriter]).
func noSniff(h http.Header) {
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil
	}
}

// ErrPastContentLength is returned by [CopyResponse] and
// [CopyResponseReady] for a body longer than the response's Content-Length
// field: the client got the bytes the field announced, a whole response,
// and the rest was read and dropped. It is the script's or application's
// error, not the client's; a gateway logs it.
var ErrPastContentLength = errors.New("cgi: body longer than its Content-Length; the rest was dropped")

// CopyResponse sends resp and then the body from body to w, flushing as the
// script writes so that output streams to the client. It returns the number of
// body bytes written. An error reading body is returned as is; an error
// writing to w is wrapped in a *[ClientError]. A body resp's status does
// not allow (204, 304) is read and dropped; one past resp's Content-Length
// is cut there, read to its end, and [ErrPastContentLength] returned.
//
// If body has a SetReadDeadline method (an *os.File pipe, a net.Conn), a
// flush waits up to a few milliseconds for more output; otherwise every read
// is flushed at once.
func CopyResponse(w http.ResponseWriter, resp *Response, body io.Reader) (int64, error) {
	var dl deadliner
	if d, ok := body.(deadliner); ok {
		dl = d
	}
	return copyResponse(w, resp, body, dl)
}

// CopyResponseReady is [CopyResponse] for a body that can tell in advance
// whether its next Read returns without waiting (a FastCGI or SCGI stream
// with data already buffered): ready reports that, and output is flushed
// only before a read that would wait, so a response that arrives whole goes
// out in one write.
func CopyResponseReady(w http.ResponseWriter, resp *Response, body io.Reader, ready func() bool) (int64, error) {
	setHeader(w, resp)
	passReason(w, resp.Status, resp.Reason)
	return copyBody(w, resp.Status, body, nil, ready)
}

// deadliner is a reader whose reads can be bounded in time.
type deadliner interface {
	SetReadDeadline(time.Time) error
}

// copyResponse is CopyResponse reading body, whose reads dl (which may be
// nil) bounds: body may be a buffered reader over dl.
func copyResponse(w http.ResponseWriter, resp *Response, body io.Reader, dl deadliner) (int64, error) {
	setHeader(w, resp)
	passReason(w, resp.Status, resp.Reason)
	return copyBody(w, resp.Status, body, dl, nil)
}

// copyBody sends status, with the header fields already in w.Header(),
// and copies body: with dl, a flush waits flushDelay for more output;
// with ready, it happens only before a read that would wait; with
// neither, after every read.
func copyBody(w http.ResponseWriter, status int, body io.Reader, dl deadliner, ready func() bool) (int64, error) {
	w.WriteHeader(status)
	if status == http.StatusNoContent || status == http.StatusNotModified {
		// RFC 9110 § 15.3.5, § 15.4.5: no content. What is sent anyway
		// is dropped, as Apache does; writing it would fail as the
		// client's error. The response is whole: it goes out now, not
		// when a script that works on ends its output.
		if err := http.NewResponseController(w).Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return 0, &ClientError{err}
		}
		return 0, drain(body)
	}
	limit := int64(-1) // the body's length, if the header says it
	if v := w.Header()["Content-Length"]; len(v) == 1 {
		if l, err := strconv.ParseInt(v[0], 10, 64); err == nil {
			limit = l
		}
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	canFlush := true
	flush := func() error {
		if !canFlush {
			return nil
		}
		err := rc.Flush()
		if errors.Is(err, http.ErrNotSupported) {
			canFlush = false
			return nil
		}
		if err != nil {
			return &ClientError{err}
		}
		return nil
	}
	pending := true // the header block is not flushed yet
	waiting := false
	var n int64
	for {
		if ready != nil && pending && !ready() {
			// The next read waits on the application: what we have goes
			// out first.
			if err := flush(); err != nil {
				return n, err
			}
			pending = false
		}
		if dl != nil && pending && !waiting {
			_ = dl.SetReadDeadline(time.Now().Add(flushDelay)) // an error leaves reads unbounded, and so flushed below
			waiting = true
		}
		nr, rerr := body.Read(buf)
		if waiting && errors.Is(rerr, os.ErrDeadlineExceeded) {
			// The script paused: what it wrote goes out now.
			_ = dl.SetReadDeadline(time.Time{})
			waiting = false
			pending = false
			if err := flush(); err != nil {
				return n, err
			}
			continue
		}
		if nr > 0 {
			p := buf[:nr]
			past := limit >= 0 && n+int64(nr) > limit
			if past {
				// Written whole, it would be refused whole (net/http's
				// ErrContentLength): the client would get none of it.
				p = p[:limit-n]
			}
			nw, werr := w.Write(p)
			n += int64(nw)
			if werr != nil {
				return n, &ClientError{werr}
			}
			pending = true
			if past {
				if waiting {
					_ = dl.SetReadDeadline(time.Time{})
				}
				if err := flush(); err != nil {
					return n, err
				}
				if err := drain(body); err != nil {
					return n, err
				}
				return n, ErrPastContentLength
			}
			if dl == nil && ready == nil {
				if err := flush(); err != nil {
					return n, err
				}
				pending = false
			}
		}
		if rerr == io.EOF {
			if waiting {
				_ = dl.SetReadDeadline(time.Time{})
			}
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// drain reads body to its end, and returns the error that ends it early.
func drain(body io.Reader) error {
	_, err := io.Copy(io.Discard, body)
	return err
}

// ClientError reports that writing to the client failed: the client went away.
type ClientError struct{ Err error }

func (e *ClientError) Error() string { return "cgi: writing to client: " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *ClientError) Unwrap() error { return e.Err }
