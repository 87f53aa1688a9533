package cgi

import (
	"errors"
	"io"
	"net"
	"net/http"
)

// rlimit is a resource limit set on each script (setrlimit(2)).
type rlimit struct {
	name     string // for errors: "RLIMIT_CPU"
	resource int
	cur, max uint64
}

// Resource numbers of setrlimit(2) on Linux (<sys/resource.h>); other
// systems refuse limits in startScript before any is used.
const (
	rlimitCPU    = 0
	rlimitNProc  = 6
	rlimitNoFile = 7
	rlimitAS     = 9
)

// rlimits returns the limits h's RLimit fields ask for.
func (h *Handler) rlimits() []rlimit {
	var ls []rlimit
	if h.RLimitCPU > 0 {
		secs := uint64((h.RLimitCPU + 999_999_999) / 1_000_000_000) // whole seconds, rounded up
		// SIGXCPU at the soft limit, SIGKILL at the hard one a second later.
		ls = append(ls, rlimit{"RLIMIT_CPU", rlimitCPU, secs, secs + 1})
	}
	for _, l := range []struct {
		name     string
		resource int
		v        int64
	}{
		{"RLIMIT_AS", rlimitAS, h.RLimitAS},
		{"RLIMIT_NPROC", rlimitNProc, h.RLimitNProc},
		{"RLIMIT_NOFILE", rlimitNoFile, h.RLimitNoFile},
	} {
		if l.v > 0 {
			ls = append(ls, rlimit{l.name, l.resource, uint64(l.v), uint64(l.v)})
		}
	}
	return ls
}

// errOutputTooLarge ends a response whose body passed Handler.MaxOutput.
var errOutputTooLarge = errors.New("cgi: script output larger than MaxOutput")

// outputLimit passes at most left body bytes to its ResponseWriter, then
// fails with errOutputTooLarge.
type outputLimit struct {
	http.ResponseWriter
	left int64
}

func (o *outputLimit) Write(p []byte) (int, error) {
	if int64(len(p)) <= o.left {
		n, err := o.ResponseWriter.Write(p)
		o.left -= int64(n)
		return n, err
	}
	n, err := o.ResponseWriter.Write(p[:o.left])
	o.left -= int64(n)
	if err == nil {
		err = errOutputTooLarge
	}
	return n, err
}

// Unwrap gives http.ResponseController the writer underneath, for Flush.
func (o *outputLimit) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// outputLimitReader reads at most left bytes from r, then fails with
// errOutputTooLarge if r has more.
type outputLimitReader struct {
	r    io.Reader
	left int64
}

func (o *outputLimitReader) Read(p []byte) (int, error) {
	if o.left <= 0 {
		var one [1]byte
		n, err := o.r.Read(one[:])
		if n > 0 {
			return 0, errOutputTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > o.left {
		p = p[:o.left]
	}
	n, err := o.r.Read(p)
	o.left -= int64(n)
	return n, err
}

// resetOnClose makes closing conn reset the connection (SO_LINGER 0), for a
// response whose end is the connection's: a plain close would pass a cut
// body for a whole one.
func resetOnClose(conn net.Conn) {
	if nc, ok := conn.(interface{ NetConn() net.Conn }); ok { // TLS
		conn = nc.NetConn()
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // if it fails, a plain close is all there is
	}
}
