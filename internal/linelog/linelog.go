// Package linelog logs the error output of the programs ferry runs (CGI
// scripts, spawned workers, FastCGI applications' STDERR streams) line by
// line, within bounds: a line longer than the bound is split into pieces,
// each but the last marked, and past a total the rest is read and
// dropped, once said. A program that writes without end cannot flood the
// log, and cannot block on a full pipe either: the rest is still read.
package linelog

import (
	"bytes"
	"io"
	"sync"

	"github.com/rs/zerolog"
)

// DefaultMaxLine is the longest line logged in one piece when
// [Writer.MaxLine] is zero.
const DefaultMaxLine = 4 << 10

// Writer splits the bytes written to it into lines and logs each as one
// event, the line (without its line end) in the field "stderr". A line
// longer than MaxLine is logged in pieces of MaxLine bytes; each piece but
// the last carries "split": true, saying the line goes on in the next
// event.
//
// A Writer is fed either by Write, as records arrive (FastCGI STDERR), or
// by ReadFrom, from a pipe; Flush logs a last line that had no line end.
// It is not safe for concurrent use.
type Writer struct {
	// Event starts the event of one line: its level and the fields that
	// say whose line it is (such as Warn().Int("pid", pid)). A nil
	// event (a disabled level or logger) logs nothing; so does a nil
	// Event.
	Event func() *zerolog.Event
	// Msg is the message of every line's event.
	Msg string
	// MaxLine bounds one logged piece of a line, in bytes. If zero or
	// negative, DefaultMaxLine.
	MaxLine int
	// MaxBytes, if positive, bounds the bytes logged in all. The line
	// that reaches it is logged whole (up to MaxLine), then one event with
	// DropMsg says that the rest is dropped, and the rest is read and
	// dropped. If zero or negative, there is no bound.
	MaxBytes int64
	// DropMsg is the message of the event that says the rest is dropped.
	DropMsg string

	line    []byte // the start of a line, waiting for its end
	logged  int64  // bytes logged
	dropped bool   // MaxBytes reached
}

// Write logs the lines p completes and keeps the start of a line p leaves
// open. It never fails.
func (w *Writer) Write(p []byte) (int, error) {
	n := len(p)
	maxLine := w.MaxLine
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	for len(p) > 0 && !w.dropped {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		// A line longer than maxLine goes in pieces, each marked split;
		// a line of exactly maxLine bytes is not split.
		for len(w.line)+len(seg) > maxLine {
			k := maxLine - len(w.line)
			w.emit(w.join(seg[:k]), true)
			seg = seg[k:]
		}
		if i < 0 {
			w.line = append(w.line, seg...)
			break
		}
		w.emit(bytes.TrimRight(w.join(seg), "\r"), false)
		p = p[i+1:]
	}
	return n, nil
}

// join returns the open line followed by seg, and empties the open line:
// seg itself when no line is open, so a whole line is not copied.
func (w *Writer) join(seg []byte) []byte {
	if len(w.line) == 0 {
		return seg
	}
	w.line = append(w.line, seg...)
	b := w.line
	w.line = w.line[:0]
	return b
}

// Flush logs the open line, if any, as a line: the program wrote a last
// line without a line end, or is gone.
func (w *Writer) Flush() {
	if len(w.line) > 0 && !w.dropped {
		w.emit(bytes.TrimRight(w.line, "\r"), false)
	}
	w.line = w.line[:0]
}

// emit logs one line or piece, within MaxBytes.
func (w *Writer) emit(b []byte, split bool) {
	if w.dropped || w.Event == nil {
		return
	}
	ev := w.Event()
	if split {
		ev = ev.Bool("split", true)
	}
	ev.Bytes("stderr", b).Msg(w.Msg)
	w.logged += int64(len(b))
	if w.MaxBytes > 0 && w.logged >= w.MaxBytes {
		w.dropped = true
		w.line = nil
		w.Event().Int64("limit_bytes", w.MaxBytes).Msg(w.DropMsg)
	}
}

// bufPool holds the buffers ReadFrom reads into.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 4096); return &b }}

// ReadFrom logs what r yields until r ends or fails, and returns the bytes
// read and the error, if any but io.EOF. The open line is kept: call Flush
// when the stream is over. Past MaxBytes, r is still read to its end, so
// that a program writing to a pipe never blocks on it.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var n int64
	for {
		k, err := r.Read(*bp)
		n += int64(k)
		w.Write((*bp)[:k]) // never fails
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
