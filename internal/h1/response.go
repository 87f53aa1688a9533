package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrygw/ferry/internal/httpsyntax"
)

// preSize is how much of a body a response holds before its header is
// decided: a handler done within it gets a Content-Length, as with
// net/http (its bufferBeforeChunkingSize).
const preSize = 2048

// maxPostHandlerRead is how much of a request body the server reads
// itself, before answering or after the handler, to keep the connection,
// as net/http's maxPostHandlerReadBytes.
const maxPostHandlerRead = 256 << 10

// outBuf is a response's buffers, pooled: the writer to the connection
// and the body's first bytes.
type outBuf struct {
	bw  *bufio.Writer
	pre [preSize]byte
}

var outPool = sync.Pool{New: func() any { return &outBuf{bw: bufio.NewWriterSize(nil, 4<<10)} }}

// response is a request's http.ResponseWriter. It also implements
// http.Flusher, http.Hijacker, io.ReaderFrom, and the methods
// http.ResponseController looks for (FlushError, SetReadDeadline,
// SetWriteDeadline, EnableFullDuplex), and SetStatusReason, for a reason
// phrase of the handler's own.
type response struct {
	c      *conn
	req    *http.Request
	rq     request
	body   *body // nil if none
	header http.Header
	out    *outBuf
	pre    []byte // the body's first bytes, while the header is not decided
	isHEAD bool

	mu            sync.Mutex // guards sentHeader against sendContinue
	canContinue   bool       // 100 Continue may still be sent
	status        int        // the final status; 0 until WriteHeader
	reason        string     // its reason phrase (SetStatusReason); "" for the standard one
	sentHeader    bool       // the header is decided and in the writer
	handlerDone   bool
	fullDuplex    bool
	closeAfter    bool
	tooBig        bool // over maxPostHandlerRead of body left unread
	chunking      bool
	hijacked      bool
	contentLength int64 // the handler's, or the one decided; -1 if none
	written       int64 // body bytes taken from the handler
	trailers      []string
	err           error // a write to the client failed
}

func (w *response) Header() http.Header { return w.header }

// sendContinue sends "100 Continue" at the first read of a body whose
// client asked for it, unless the response has begun.
func (w *response) sendContinue() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.canContinue || w.sentHeader {
		return
	}
	w.canContinue = false
	w.buf()
	w.out.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	if err := w.out.bw.Flush(); err != nil {
		w.fail(err)
	}
}

// SetStatusReason sets the reason phrase of the final status line, such
// as "Nope" in "HTTP/1.1 404 Nope", in place of the standard one, as
// Apache and nginx pass a CGI script's own on. It must come before
// WriteHeader; a phrase holding a control byte is ignored.
func (w *response) SetStatusReason(reason string) {
	if w.status == 0 && !httpsyntax.HasCTL(reason) {
		w.reason = reason
	}
}

func (w *response) WriteHeader(code int) {
	if w.hijacked {
		w.logf("http: response.WriteHeader on hijacked connection")
		return
	}
	if w.status != 0 {
		w.logf("http: superfluous response.WriteHeader call")
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational response goes out at once, with the header
		// as it is.
		w.mu.Lock()
		defer w.mu.Unlock()
		if code == http.StatusContinue {
			if !w.canContinue {
				return
			}
			w.canContinue = false
		}
		w.buf()
		bw := w.out.bw
		writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code, "")
		writeFields(bw, w.header, []string{"Content-Length", "Transfer-Encoding"})
		bw.WriteString("\r\n")
		if err := bw.Flush(); err != nil {
			w.fail(err)
		}
		return
	}
	w.status = code
	if cl := w.header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && n >= 0 {
			w.contentLength = n
		} else {
			w.logf("http: invalid Content-Length of %q", cl)
			w.header.Del("Content-Length")
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if !w.sentHeader {
		if len(w.pre)+len(p) <= preSize {
			if w.pre == nil {
				w.buf()
				w.pre = w.out.pre[:0]
			}
			w.pre = append(w.pre, p...)
			return len(p), nil
		}
		w.decide(p)
		if w.err != nil {
			return 0, w.err
		}
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// buf takes the response's buffers from the pool.
func (w *response) buf() {
	if w.out == nil {
		w.out = outPool.Get().(*outBuf)
		w.out.bw.Reset(connWriter{w.c})
	}
}

// decide writes the header, decided as net/http decides it, followed by
// the body bytes held back; next is the body's next bytes, if known (for
// the Content-Type sniff).
func (w *response) decide(next []byte) {
	w.mu.Lock()
	w.sentHeader = true
	w.canContinue = false
	w.mu.Unlock()
	w.buf()
	p := w.pre
	if len(p) == 0 {
		p = next
	}
	w.writeHeader(p)
	if len(w.pre) > 0 {
		w.writeBody(w.pre)
	}
	w.pre = nil
}

// writeBody writes body bytes after the header: as a chunk when chunking,
// none for HEAD.
func (w *response) writeBody(p []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.isHEAD || len(p) == 0 {
		return nil
	}
	bw := w.out.bw
	if w.chunking {
		bw.Write(strconv.AppendUint(bw.AvailableBuffer(), uint64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	if _, err := bw.Write(p); err != nil {
		w.fail(err)
		return err
	}
	if w.chunking {
		bw.WriteString("\r\n")
	}
	return nil
}

// fail records a failed write to the client.
func (w *response) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

func (w *response) Flush() { _ = w.FlushError() }

// FlushError sends what the handler wrote so far, the header first.
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		w.decide(nil)
	}
	if w.err != nil {
		return w.err
	}
	if err := w.out.bw.Flush(); err != nil {
		w.fail(err)
		return err
	}
	return nil
}

// finish ends the response once the handler has returned: the header if
// not out yet (with a Content-Length if the body was short enough), the
// held body, the last chunk and trailers, and a flush.
func (w *response) finish() {
	w.handlerDone = true
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		w.decide(nil)
	}
	bw := w.out.bw
	if w.err == nil && w.chunking {
		bw.WriteString("0\r\n")
		w.writeTrailers(bw)
		bw.WriteString("\r\n")
	}
	if w.err == nil {
		if err := bw.Flush(); err != nil {
			w.fail(err)
		}
	}
	if w.contentLength != -1 && w.written != w.contentLength && bodyAllowed(w.status) && !w.isHEAD {
		w.closeAfter = true // the client would read the next response as this one's body
	}
	w.release()
}

// abort ends a response whose handler panicked: what is in the writer's
// buffer (header and body already decided) goes out, what was held back
// does not, and no last chunk is written.
func (w *response) abort() {
	if w.out != nil && w.sentHeader && w.err == nil {
		w.out.bw.Flush()
	}
	w.release()
}

func (w *response) release() {
	if w.out != nil {
		w.out.bw.Reset(nil)
		outPool.Put(w.out)
		w.out, w.pre = nil, nil
	}
}

// writeTrailers writes the trailer fields: those the handler declared in
// "Trailer", and those set with http.TrailerPrefix.
func (w *response) writeTrailers(bw *bufio.Writer) {
	var t http.Header
	add := func(k string, vv []string) {
		if len(vv) > 0 {
			if t == nil {
				t = make(http.Header)
			}
			t[k] = vv
		}
	}
	for _, k := range w.trailers {
		add(k, w.header[k])
	}
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			add(http.CanonicalHeaderKey(name), vv)
		}
	}
	if t != nil {
		writeFields(bw, t, nil)
	}
}

// writeHeader decides and writes the status line and header fields, as
// net/http's chunkWriter.writeHeader; p is the body's first bytes.
func (w *response) writeHeader(p []byte) {
	h := w.header
	code := w.status
	keepAlives := !w.c.srv.noKeep.Load()
	var excludedArr [8]string // few: a scan beats a map
	excluded := excludedArr[:0]
	exclude := func(k string) { excluded = append(excluded, k) }

	trailers := false
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			trailers = true
		}
	}
	for _, v := range h["Trailer"] {
		trailers = true
		for _, k := range strings.Split(v, ",") {
			if k = textproto.TrimString(k); k != "" {
				k = http.CanonicalHeaderKey(k)
				switch k {
				case "Transfer-Encoding", "Trailer", "Content-Length":
				default:
					w.trailers = append(w.trailers, k)
					exclude(k)
				}
			}
		}
	}

	te := h.Get("Transfer-Encoding")
	hasTE := te != ""
	setCL := false
	var setCT, setConn, setTE string
	_, hasCLField := h["Content-Length"]
	if w.handlerDone && !trailers && !hasTE && bodyAllowed(code) && !hasCLField && (!w.isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		setCL = true
	}
	if w.rq.wants10Keep && keepAlives {
		if h.Get("Content-Length") != "" && h.Get("Connection") == "keep-alive" {
			w.closeAfter = false
		}
	}
	hasCL := w.contentLength != -1
	if w.rq.wants10Keep && (w.isHEAD || hasCL || !bodyAllowed(code)) {
		if _, set := h["Connection"]; !set {
			setConn = "keep-alive"
		}
	} else if !w.req.ProtoAtLeast(1, 1) || w.rq.wantsClose {
		w.closeAfter = true
	}
	if h.Get("Connection") == "close" || !keepAlives {
		w.closeAfter = true
	}
	if w.body != nil && w.rq.expect100 && !w.body.eof() {
		// The client waits for a 100 Continue that will not come:
		// whatever it sends next is not a request.
		w.closeAfter = true
	}
	if w.req.ContentLength != 0 && !w.closeAfter && !w.fullDuplex && w.body != nil {
		// Read the rest of a small body before answering: a client that
		// sends its whole request before reading would otherwise block.
		switch st := w.body.state(); {
		case st == bodyClosedEarly:
			w.closeAfter = true
		case st == bodyLeft && w.body.unread() >= maxPostHandlerRead:
			w.tooBig = true
		case st == bodyLeft:
			if !w.body.discard(maxPostHandlerRead + 1) {
				if w.body.failed() {
					w.closeAfter = true
				} else {
					w.tooBig = true
				}
			}
		}
		if w.tooBig {
			w.closeAfter = true
			exclude("Connection")
			setConn = "close"
		}
	}
	if bodyAllowed(code) {
		_, haveType := h["Content-Type"]
		if h.Get("Content-Encoding") == "" && !haveType && !hasTE && len(p) > 0 {
			setCT = http.DetectContentType(p)
		}
	} else {
		exclude("Content-Length")
		exclude("Transfer-Encoding")
		if code == http.StatusNotModified {
			exclude("Content-Type")
		}
	}
	_, hasDate := h["Date"]
	if hasCL && hasTE && te != "identity" {
		w.logf("http: WriteHeader called with both Transfer-Encoding of %q and a Content-Length of %d", te, w.contentLength)
		exclude("Content-Length")
		hasCL = false
	}
	switch {
	case w.isHEAD || !bodyAllowed(code) || code == http.StatusNoContent:
		exclude("Transfer-Encoding")
	case hasCL:
		exclude("Transfer-Encoding")
	case w.req.ProtoAtLeast(1, 1):
		if hasTE && te == "identity" {
			w.closeAfter = true
			exclude("Transfer-Encoding")
		} else {
			w.chunking = true
			setTE = "chunked"
			if hasTE && te == "chunked" {
				exclude("Transfer-Encoding")
			}
		}
	default:
		w.closeAfter = true
		exclude("Transfer-Encoding")
	}
	if w.chunking {
		exclude("Content-Length")
	}
	if w.closeAfter && (!keepAlives || !hasToken(h["Connection"][:min(1, len(h["Connection"]))], "close")) && !isProtocolSwitch(code, h) {
		exclude("Connection")
		if w.req.ProtoAtLeast(1, 1) {
			setConn = "close"
		}
	}

	bw := w.out.bw
	writeStatusLine(bw, w.req.ProtoAtLeast(1, 1), code, w.reason)
	writeFields(bw, h, excluded)
	if !hasDate {
		bw.WriteString("Date: ")
		bw.Write(appendDate(bw.AvailableBuffer()))
		bw.WriteString("\r\n")
	}
	if setCL {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), w.contentLength, 10))
		bw.WriteString("\r\n")
	}
	for _, f := range [...]struct{ k, v string }{{"Content-Type", setCT}, {"Connection", setConn}, {"Transfer-Encoding", setTE}} {
		if f.v != "" {
			writeField(bw, f.k, f.v)
		}
	}
	bw.WriteString("\r\n")
}

// isProtocolSwitch reports whether a response switches protocols (101
// with Upgrade).
func isProtocolSwitch(code int, h http.Header) bool {
	return code == http.StatusSwitchingProtocols && h.Get("Upgrade") != "" && hasToken(h["Connection"], "upgrade")
}

// bodyAllowed reports whether a status may have a body.
func bodyAllowed(code int) bool {
	return !(code >= 100 && code <= 199 || code == http.StatusNoContent || code == http.StatusNotModified)
}

// writeStatusLine writes "HTTP/1.x code reason": the standard reason
// for code when reason is "".
func writeStatusLine(bw *bufio.Writer, is11 bool, code int, reason string) {
	if is11 {
		bw.WriteString("HTTP/1.1 ")
	} else {
		bw.WriteString("HTTP/1.0 ")
	}
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	bw.WriteByte(' ')
	if reason == "" {
		reason = http.StatusText(code)
	}
	if reason != "" {
		bw.WriteString(reason)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	}
	bw.WriteString("\r\n")
}

// keysPool holds the slices writeFields sorts field names in.
var keysPool = sync.Pool{New: func() any { s := make([]string, 0, 16); return &s }}

// writeFields writes h's fields sorted by name, as net/http does, but
// those in skip and those set with http.TrailerPrefix; invalid names are
// dropped, CR and LF in values become spaces.
func writeFields(bw *bufio.Writer, h http.Header, skip []string) {
	kp := keysPool.Get().(*[]string)
	keys := (*kp)[:0]
	for k := range h {
		if !slices.Contains(skip, k) && !strings.HasPrefix(k, http.TrailerPrefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpsyntax.IsToken(k) {
			continue
		}
		for _, v := range h[k] {
			writeField(bw, k, v)
		}
	}
	clear(keys)
	*kp = keys[:0]
	keysPool.Put(kp)
}

// writeField writes one field line.
func writeField(bw *bufio.Writer, k, v string) {
	if strings.ContainsAny(v, "\r\n") {
		v = strings.NewReplacer("\n", " ", "\r", " ").Replace(v)
	}
	v = textproto.TrimString(v)
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// dateCache is the Date field of the current second.
type dateCache struct {
	sec int64
	b   []byte
}

var lastDate atomic.Pointer[dateCache]

// appendDate appends the current time as the Date field wants it.
func appendDate(b []byte) []byte {
	now := time.Now()
	if d := lastDate.Load(); d != nil && d.sec == now.Unix() {
		return append(b, d.b...)
	}
	d := &dateCache{sec: now.Unix(), b: now.UTC().AppendFormat(nil, http.TimeFormat)}
	lastDate.Store(d)
	return append(b, d.b...)
}

// Hijack hands the connection over to the handler: the header written so
// far goes out first.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	c := w.c
	if w.status != 0 {
		if !w.sentHeader {
			w.decide(nil)
		}
		if w.err == nil {
			w.out.bw.Flush()
		}
	}
	w.release()
	c.stopWatch()
	c.mu.Lock()
	c.hijacked = true
	c.mu.Unlock()
	w.hijacked = true
	c.endBody()
	c.rwc.SetDeadline(time.Time{})
	c.srv.setState(c.rwc, http.StateHijacked)
	return c.rwc, bufio.NewReadWriter(c.br, bufio.NewWriter(c.rwc)), nil
}

// ReadFrom copies src to the body: with sendfile when the header says
// how long the body is, in pieces within the send timeout.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := w.c.rwc.(io.ReaderFrom)
	if !ok || w.hijacked {
		return io.Copy(writerOnly{w}, src)
	}
	var n int64
	if !w.sentHeader {
		// The first bytes go through Write: the source must have some
		// before the response begins, and they may be sniffed.
		n0, err := io.Copy(writerOnly{w}, io.LimitReader(src, 512))
		n += n0
		if err != nil || n0 < 512 {
			return n, err
		}
	}
	if err := w.FlushError(); err != nil {
		return n, err
	}
	if w.chunking || !bodyAllowed(w.status) || w.isHEAD {
		n0, err := io.Copy(writerOnly{w}, src)
		return n + n0, err
	}
	left := int64(-1)
	base := src
	if lr, ok := src.(*io.LimitedReader); ok {
		base, left = lr.R, lr.N
	}
	for left != 0 {
		piece := int64(1 << 20)
		if left > 0 {
			piece = min(piece, left)
		}
		if d := w.c.srv.SendTimeout; d > 0 {
			w.c.setWriteLoose(d)
		}
		m, err := rf.ReadFrom(&io.LimitedReader{R: base, N: piece})
		n += m
		w.written += m
		if left > 0 {
			left -= m
		}
		if err != nil {
			w.fail(err)
			return n, err
		}
		if m < piece {
			break
		}
	}
	if lr, ok := src.(*io.LimitedReader); ok {
		lr.N = left
	}
	return n, nil
}

// writerOnly hides a response's ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// EnableFullDuplex lets the handler read the body while it writes the
// response: the unread rest of a body is not read before the header.
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}

// SetReadDeadline sets the connection's read deadline, for
// http.ResponseController: the body timeout no longer moves it, and a
// body read it cuts fails for the handler but is not reported by
// BodyError, which says why the client failed.
func (w *response) SetReadDeadline(t time.Time) error {
	return w.c.setHandlerRead(t)
}

// SetWriteDeadline sets the connection's write deadline, for
// http.ResponseController.
func (w *response) SetWriteDeadline(t time.Time) error {
	w.c.wdl = t
	return w.c.rwc.SetWriteDeadline(t)
}

func (w *response) logf(format string, args ...any) {
	if l := w.c.srv.Logger; l != nil {
		l.Warn().Msgf(format, args...)
	}
}
