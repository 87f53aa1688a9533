package peerstest

import (
	"testing"

	"github.com/ferrygw/ferry/internal/peers"
)

// RunGunicorn starts Gunicorn serving a WSGI application over HTTP
// ([peers.StartGunicorn]).
func RunGunicorn(tb testing.TB, cfg peers.GunicornConfig) *peers.Gunicorn {
	tb.Helper()
	return start(tb, peers.StartGunicorn, cfg, "gunicorn")
}
