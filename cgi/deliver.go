package cgi

import "errors"

// Markers a [Transport] wraps its errors in to say how far a request got,
// so that a caller holding several backends knows whether sending it to
// another one could run it twice. Test them with errors.Is; the marked
// error keeps its message and its status ([StatusOf]).
var (
	// ErrNotSent marks a failure before the application could have seen
	// the request: no connection free in time, the connection refused,
	// or the request's first bytes not written. The application cannot
	// have run it, and the request body has not been read.
	ErrNotSent = errors.New("cgi: request not sent to the application")
	// ErrNoAnswer marks a connection that broke (closed or reset) after
	// the request was sent and before a byte of answer came back: the
	// application may have started it. Only a request that may be
	// repeated (an idempotent method, such as GET, HEAD, PUT or DELETE, and
	// no body) may go elsewhere then.
	ErrNoAnswer = errors.New("cgi: connection lost before any answer")
)

// NotSent returns err marked with [ErrNotSent]; nil stays nil.
func NotSent(err error) error { return mark(err, ErrNotSent) }

// NoAnswer returns err marked with [ErrNoAnswer]; nil stays nil.
func NoAnswer(err error) error { return mark(err, ErrNoAnswer) }

func mark(err, stage error) error {
	if err == nil || errors.Is(err, stage) {
		return err
	}
	return &deliveryError{err: err, stage: stage}
}

// deliveryError is an error with a delivery marker: its message is the
// error's own, and errors.Is and errors.As see both.
type deliveryError struct{ err, stage error }

func (e *deliveryError) Error() string   { return e.err.Error() }
func (e *deliveryError) Unwrap() []error { return []error{e.err, e.stage} }
