package cgi

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"strconv"

	"github.com/rs/zerolog"
)

// StatusError is an error that says which HTTP status a gateway answers
// with, and why. Resolvers, [ExactBody] and the FastCGI and SCGI clients
// return it (or wrap it) so that the status travels with the cause; read it
// with errors.As or [StatusOf].
type StatusError struct {
	// Status is the HTTP status to answer with, such as 404 or 503.
	Status int
	// Err is the cause; it may be nil.
	Err error
}

// Error returns the cause's message, or the status when there is no cause.
func (e *StatusError) Error() string {
	if e.Err != nil {
		return e.Err.Error()
	}
	return "cgi: " + strconv.Itoa(e.Status) + " " + http.StatusText(e.Status)
}

// Unwrap returns the cause.
func (e *StatusError) Unwrap() error { return e.Err }

// statusError returns err with status attached.
func statusError(status int, err error) error { return &StatusError{Status: status, Err: err} }

// StatusOf returns the status a gateway answers with when passing a request
// on failed with err. It is the one mapping of failures to statuses:
//
//   - the Status of the first [*StatusError] in err's chain (a refused
//     request body, 413; an application's OVERLOADED or no connection free
//     in time, 503; no script, 404);
//   - 504 Gateway Timeout for a timeout: err wraps
//     context.DeadlineExceeded or is a net.Error whose Timeout is true;
//   - 502 Bad Gateway for anything else (a refused or reset connection, a
//     malformed response).
func StatusOf(err error) int {
	var se *StatusError
	switch {
	case errors.As(err, &se):
		return se.Status
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return http.StatusGatewayTimeout
	}
	return http.StatusBadGateway
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// answerNoScript answers for an error from a [Resolver]: at Debug level,
// since clients ask for what is not there all the time, unless it is the
// gateway's own fault (5xx, such as an unusable script directory), a
// SCRIPT_FILENAME refused (Warn) or a 403 with a reason (Info).
func answerNoScript(w http.ResponseWriter, r *http.Request, log *zerolog.Logger, err error, msg string) {
	status := resolveStatus(err)
	lvl := zerolog.DebugLevel
	switch {
	case status >= http.StatusInternalServerError:
		lvl = zerolog.ErrorLevel
	case isRefusedFilename(err):
		// A script the front web server named and ferry will not run:
		// its configuration is wrong, or someone probes it.
		lvl = zerolog.WarnLevel
	case status == http.StatusForbidden && err != nil && errors.Unwrap(err) != nil:
		// A refusal with a reason (a symbolic link refused, no execute
		// bit, a directory): the cause of the common "403 for a script
		// that is right there" puzzle, so it is logged where people look.
		lvl = zerolog.InfoLevel
	}
	answerError(w, r, log, lvl, status, err, "", msg)
}

// isRefusedFilename reports whether err is a SCRIPT_FILENAME a
// [FilenameDir] refused.
func isRefusedFilename(err error) bool {
	var rf *refusedFilename
	return errors.As(err, &rf)
}

// resolveStatus is [StatusOf] for an error from a [Resolver]: one that
// carries no status is 403 if it wraps fs.ErrPermission, else 404.
func resolveStatus(err error) int {
	var se *StatusError
	switch {
	case errors.As(err, &se):
		return se.Status
	case errors.Is(err, fs.ErrPermission):
		return http.StatusForbidden
	}
	return http.StatusNotFound
}

// answerError is the one place a gateway answers for a failure of its own
// or of what it passes the request to: a short status page with status,
// Retry-After on 503, and one log line at lvl, naming backend when it is
// not empty. A client that is gone gets nothing.
func answerError(w http.ResponseWriter, r *http.Request, log *zerolog.Logger, lvl zerolog.Level, status int, err error, backend, msg string) {
	if r.Context().Err() != nil {
		return
	}
	ObserverFrom(r.Context()).Failed(status, err)
	ev := log.WithLevel(lvl)
	if ev != nil {
		ev = ev.Err(err)
		if backend != "" {
			ev = ev.Str("backend", backend)
		}
		ev.Int("status", status).Str("path", r.URL.Path).Msg(msg)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, strconv.Itoa(status)+" "+http.StatusText(status), status)
}
