package cgi

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// ErrBodyNotAllowed is returned by [ResponseWriter.Write] for a response that
// has no body: HEAD, 204, 304.
var ErrBodyNotAllowed = http.ErrBodyNotAllowed

// ResponseWriter is an [http.ResponseWriter] that writes a CGI response
// (RFC 3875 § 6): a Status field, the header fields, a blank line, then the
// body. It is the inbound half of every protocol ferry serves: a CGI
// program's stdout, a FastCGI STDOUT stream, an SCGI connection.
//
// The header block is written at the first Write, Flush or Close; when no
// Content-Type was set and the response has a body, one is sniffed from the
// first bytes, as net/http does. It implements [http.Flusher]. The caller must
// Close it to send a response that wrote nothing.
type ResponseWriter struct {
	w           *bufio.Writer
	flusher     interface{ Flush() error } // the underlying writer's own flush, if any
	pooled      bool                       // w came from bufPool8k
	closed      bool
	header      http.Header
	status      int
	reason      string // the handler's reason phrase; "" for the standard one
	wroteHeader bool
	noBody      bool
	err         error
	written     int64
}

// NewResponseWriter returns a ResponseWriter writing to w, for the request r
// (used to leave out bodies of HEAD requests; it may be nil). w is buffered
// unless it is a *bufio.Writer already. If w (not a *bufio.Writer) has a
// Flush() error method, as a FastCGI stream does, Flush calls it after
// writing out the buffer; Close does not.
func NewResponseWriter(w io.Writer, r *http.Request) *ResponseWriter {
	rw := &ResponseWriter{header: make(http.Header), noBody: r != nil && r.Method == http.MethodHead}
	if bw, ok := w.(*bufio.Writer); ok {
		rw.w = bw
	} else {
		rw.w = bufPool8k.Get().(*bufio.Writer)
		rw.w.Reset(w)
		rw.pooled = true
		rw.flusher, _ = w.(interface{ Flush() error })
	}
	return rw
}

// Header returns the header fields to send.
func (rw *ResponseWriter) Header() http.Header { return rw.header }

// WriteHeader records the status; it is sent with the first body bytes.
// Informational (1xx) statuses cannot be sent over CGI and are ignored.
//
// A code outside 200-599, which a CGI Status field cannot carry (RFC 3875
// § 6.3.3), is sent as 500.
func (rw *ResponseWriter) WriteHeader(code int) {
	if rw.wroteHeader || rw.status != 0 || (code >= 100 && code < 200) {
		return
	}
	if code < 200 || code > 599 {
		code = http.StatusInternalServerError
	}
	rw.status = code
}

// SetStatusReason sets the reason phrase the Status field gives, such as
// "Nope" for "Status: 404 Nope", in place of the standard one ("Not
// Found"), as a script's own phrase is passed on. It is ignored once the
// header block is sent, and for a phrase holding a control byte.
func (rw *ResponseWriter) SetStatusReason(reason string) {
	if !rw.wroteHeader && validReason(reason) {
		rw.reason = reason
	}
}

func (rw *ResponseWriter) bodyAllowed() bool {
	return !rw.noBody && rw.status != http.StatusNoContent && rw.status != http.StatusNotModified
}

// writeHeader sends the header block; p is the first body chunk, for sniffing.
func (rw *ResponseWriter) writeHeader(p []byte) {
	if rw.wroteHeader {
		return
	}
	rw.wroteHeader = true
	if rw.status == 0 {
		rw.status = http.StatusOK
	}
	// Sniff as net/http does: not for an encoded body, nor an empty one.
	_, haveType := rw.header["Content-Type"]
	if !haveType && rw.header.Get("Content-Encoding") == "" && len(p) > 0 && rw.bodyAllowed() {
		rw.header.Set("Content-Type", http.DetectContentType(p))
	}
	text := rw.reason
	if text == "" {
		text = http.StatusText(rw.status)
	}
	if text == "" {
		text = "status code " + strconv.Itoa(rw.status)
	}
	if _, err := fmt.Fprintf(rw.w, "Status: %d %s\r\n", rw.status, text); err != nil {
		rw.err = err
		return
	}
	// Header.Write drops invalid names, and replaces CR and LF in values.
	if err := rw.header.WriteSubset(rw.w, cgiHeaderExclude); err != nil {
		rw.err = err
		return
	}
	_, rw.err = rw.w.WriteString("\r\n")
}

// cgiHeaderExclude are fields the CGI response cannot carry as given: the
// status goes in Status, and framing is the gateway's.
var cgiHeaderExclude = map[string]bool{"Status": true, "Transfer-Encoding": true, "Connection": true}

// Write sends body bytes, after the header block.
func (rw *ResponseWriter) Write(p []byte) (int, error) {
	if rw.closed {
		return 0, errClosed
	}
	if len(p) == 0 && !rw.wroteHeader {
		return 0, nil // wait for real bytes to sniff, as net/http does
	}
	rw.writeHeader(p)
	if rw.err != nil {
		return 0, rw.err
	}
	if !rw.bodyAllowed() {
		if rw.noBody {
			return len(p), nil // HEAD: the body is dropped, as net/http does
		}
		return 0, ErrBodyNotAllowed
	}
	n, err := rw.w.Write(p)
	rw.written += int64(n)
	if err != nil {
		rw.err = err
	}
	return n, err
}

// Flush sends what is buffered.
func (rw *ResponseWriter) Flush() { _ = rw.FlushError() }

// FlushError sends what is buffered and reports a write error; it is what
// [http.ResponseController.Flush] calls.
func (rw *ResponseWriter) FlushError() error {
	if err := rw.writeOut(); err != nil {
		return err
	}
	if rw.flusher != nil {
		rw.err = rw.flusher.Flush()
	}
	return rw.err
}

// writeOut sends the header block if not yet sent, and the buffer.
func (rw *ResponseWriter) writeOut() error {
	if rw.closed {
		return errClosed
	}
	rw.writeHeader(nil)
	if rw.err != nil {
		return rw.err
	}
	rw.err = rw.w.Flush()
	return rw.err
}

var errClosed = errors.New("cgi: ResponseWriter used after Close")

// bufPool8k holds the buffers of ResponseWriters.
var bufPool8k = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8192) }}

// Close sends the header block if nothing was written yet, and writes out
// the buffer. It neither closes nor flushes the underlying writer.
//
// After Close the ResponseWriter must not be used: its buffer is reused.
func (rw *ResponseWriter) Close() error {
	if rw.closed {
		return rw.err
	}
	err := rw.writeOut()
	rw.closed = true
	if rw.pooled {
		rw.w.Reset(nil)
		bufPool8k.Put(rw.w)
		rw.w = nil
	}
	return err
}

// Status returns the status sent or to be sent (200 if none was set).
func (rw *ResponseWriter) Status() int {
	if rw.status == 0 {
		return http.StatusOK
	}
	return rw.status
}

// Written returns the number of body bytes written.
func (rw *ResponseWriter) Written() int64 { return rw.written }

// Reset discards the status and header fields set so far, if the header
// block has not been sent, so that an error response can replace them; it
// reports whether it could.
func (rw *ResponseWriter) Reset() bool {
	if rw.wroteHeader || rw.closed {
		return false
	}
	rw.header = make(http.Header)
	rw.status, rw.reason = 0, ""
	return true
}

// Run runs h for r with rw as its response, the way net/http treats a
// handler that panics: a panic before anything was sent gives a clean 500
// instead. It returns what h panicked with (nil if it returned), and
// whether the response must be aborted, not completed: h panicked with
// http.ErrAbortHandler, or after output had gone out.
func (rw *ResponseWriter) Run(h http.Handler, r *http.Request) (panicked any, abort bool) {
	defer func() {
		panicked = recover()
		if panicked == nil {
			return
		}
		if panicked == http.ErrAbortHandler || !rw.Reset() {
			abort = true
			return
		}
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(rw, "500 Internal Server Error\n") // write errors surface in Close
	}()
	h.ServeHTTP(rw, r)
	return nil, false
}

// HeaderWritten reports whether the header block has been sent.
func (rw *ResponseWriter) HeaderWritten() bool { return rw.wroteHeader }

var _ interface {
	http.ResponseWriter
	http.Flusher
} = (*ResponseWriter)(nil)
