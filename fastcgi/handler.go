package fastcgi

import (
	"github.com/ferrygw/ferry/cgi"
)

// NewHandler returns a handler that forwards HTTP requests to the FastCGI
// application c reaches, as Responder requests: the request becomes CGI
// meta-variables (package cgi, the same mapping a CGI script gets), the
// application's STDOUT a CGI response. res says which script a request
// runs (nil: the application mounted at the root, the whole path
// PATH_INFO); s holds the meta-variables, limits and logger.
//
// Failures are answered as [cgi.Forwarder] documents: no connection free
// in time ([ErrPoolTimeout]) or OVERLOADED ([ErrOverloaded]) is 503, no
// answer within the read timeout 504, anything else wrong with the
// application 502; each with a log line naming the backend. For an
// on-demand worker pool, set the Forwarder's Busy to the pool's.
func NewHandler(c *Client, res cgi.Resolver, s cgi.Settings) *cgi.Forwarder {
	return &cgi.Forwarder{Settings: s, Transport: c, Resolver: res, Name: "fastcgi"}
}
