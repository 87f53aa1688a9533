package cgi

import (
	"net/http"

	"github.com/ferrygw/ferry/internal/httpsyntax"
)

// reasonSetter is a ResponseWriter that can send a reason phrase of the
// handler's choosing with its status, such as "404 Nope" from a script's
// "Status: 404 Nope": ferry's HTTP/1.1 front and [ResponseWriter] (the
// FastCGI and SCGI fronts, a CGI program's output). net/http cannot.
type reasonSetter interface {
	// SetStatusReason sets the reason phrase sent with the status the
	// next WriteHeader gives, in place of the standard one. It is ignored
	// once the header is sent, and for a phrase no status line may carry.
	SetStatusReason(reason string)
}

// setStatusReason has reason sent with the status of w's coming
// WriteHeader if w, or a ResponseWriter it wraps (found through Unwrap
// methods, as [http.ResponseController] finds its methods), can send one,
// as Apache and nginx pass a script's own phrase on. It reports whether
// one could. A standard phrase, or none, needs no call.
func setStatusReason(w http.ResponseWriter, reason string) bool {
	for {
		switch t := w.(type) {
		case reasonSetter:
			t.SetStatusReason(reason)
			return true
		case interface{ Unwrap() http.ResponseWriter }:
			w = t.Unwrap()
		default:
			return false
		}
	}
}

// passReason has resp's reason phrase sent with status, if it is not the
// standard one for it.
func passReason(w http.ResponseWriter, status int, reason string) {
	if reason != "" && reason != http.StatusText(status) {
		setStatusReason(w, reason)
	}
}

// validReason reports whether a status line may carry reason (RFC 9112
// § 4: tabs, spaces, visible characters and obs-text).
func validReason(reason string) bool { return !httpsyntax.HasCTL(reason) }
