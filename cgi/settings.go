package cgi

import (
	"cmp"

	"github.com/rs/zerolog"
)

// Settings are what every gateway of this package shares, whether it runs a
// script per request ([Handler]) or passes requests to a long-lived
// application ([Forwarder], which the FastCGI and SCGI handlers are). The
// zero value is ready to use.
type Settings struct {
	// Env holds extra "NAME=value" meta-variables for every request. They
	// cannot override the meta-variables of the request itself.
	Env []string
	// ServerSoftware is SERVER_SOFTWARE. If empty, DefaultServerSoftware.
	ServerSoftware string
	// BodyLimits bounds the request bodies passed on; a body of unknown
	// length is spooled within them first, since CONTENT_LENGTH must be
	// exact. Its zero fields take their defaults.
	BodyLimits BodyLimits
	// HeaderLimits bounds the response header block of a script or an
	// application. Its zero fields take their defaults.
	HeaderLimits HeaderLimits
	// Logger receives errors, and a script's stderr lines. The request's
	// own logger takes precedence: one in its context (zerolog.Ctx), or
	// its observer's ([RequestLogger], [LoggerFrom]). If both are absent,
	// a Handler writes JSON lines to os.Stderr and a Forwarder logs nothing.
	Logger *zerolog.Logger
}

// software returns SERVER_SOFTWARE.
func (s *Settings) software() string { return cmp.Or(s.ServerSoftware, DefaultServerSoftware) }

// nopLogger is where a Forwarder without a Logger logs. It is never
// changed: zerolog's methods return copies.
var nopLogger = zerolog.Nop()
