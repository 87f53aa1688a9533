package scgi

import (
	"github.com/ferrygw/ferry/cgi"
)

// NewHandler returns a handler that forwards HTTP requests to the SCGI
// application c reaches: the request becomes CGI meta-variables (package
// cgi, the same mapping a CGI script or a FastCGI application gets), and
// the application's answer, a CGI response or an HTTP status line and
// header (uwsgi), goes to the client. res says which script a request runs
// (nil: the application mounted at the root, the whole path PATH_INFO); s
// holds the meta-variables, limits and logger. A body of unknown length is
// spooled within s.BodyLimits first: SCGI needs CONTENT_LENGTH before the
// body (protocol.txt § 3).
//
// Failures are answered as [cgi.Forwarder] documents: no connection slot
// free in time ([ErrPoolTimeout]) is 503, no answer within the read
// timeout 504, anything else wrong with the application 502; each with a
// log line naming the backend.
func NewHandler(c *Client, res cgi.Resolver, s cgi.Settings) *cgi.Forwarder {
	return &cgi.Forwarder{Settings: s, Transport: c, Resolver: res, Name: "scgi"}
}
