package bridge

import (
	"time"

	"github.com/ferrygw/ferry/cgi"
)

// Settings are what every mount starts from: how scripts run, and what
// every request passed to a script or an application gets. The zero value
// uses every default; each mount gets its own script concurrency limit.
type Settings struct {
	// Env holds extra "KEY=VALUE" variables for every script, worker and
	// application request.
	Env []string
	// PassEnv names variables of ferry's own environment passed to scripts
	// and spawned workers, beyond cgi.DefaultInheritEnv().
	PassEnv []string
	// PassAuthorization gives scripts the Authorization header (withheld
	// by default, as Apache's CGIPassAuth Off).
	PassAuthorization bool
	// ScriptTimeout is a script's wall-clock limit. If zero,
	// cgi.DefaultTimeout; if negative, none.
	ScriptTimeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL for a script or
	// worker being stopped. If zero or negative, cgi.DefaultKillGrace.
	KillGrace time.Duration
	// User and Group are who scripts and spawned FastCGI workers run as
	// (see cgi.Handler.User): as root with no User, www-data, else nobody.
	User, Group string
	// KeepBackground lets processes a script leaves in the background
	// outlive its request.
	KeepBackground bool
	// RLimitCPU, RLimitAS, RLimitNProc and RLimitNoFile bound each script
	// process (see cgi.Handler). If zero or negative, no bound.
	RLimitCPU                           time.Duration
	RLimitAS, RLimitNProc, RLimitNoFile int64
	// MaxOutput bounds a script's response body. If zero, no bound.
	MaxOutput int64
	// MaxConcurrent bounds the scripts running at once per mount. If zero
	// or negative, four per CPU.
	MaxConcurrent int
	// MaxQueue bounds the requests waiting for a script slot. If zero or
	// negative, cgi.DefaultMaxQueue.
	MaxQueue int
	// QueueTimeout bounds the wait for a script slot or a backend
	// connection. If zero or negative, cgi.DefaultQueueTimeout.
	QueueTimeout time.Duration
	// MaxRequestBody bounds request bodies (413 past it). If zero or
	// negative, cgi.DefaultMaxRequestBody.
	MaxRequestBody int64
	// MaxHeaderLine bounds one header line of a script's or an
	// application's response. If zero or negative, cgi.DefaultMaxHeaderLine.
	MaxHeaderLine int
	// SpoolMemory bounds the memory a chunked request body is spooled in
	// before a temporary file in TempDir. If zero or negative,
	// cgi.DefaultSpoolMemory.
	SpoolMemory int64
	// TempDir holds spooled request bodies. If empty, os.TempDir().
	TempDir string
}

// inheritEnv returns the names of ferry's variables scripts and workers
// get.
func (st *Settings) inheritEnv() []string {
	if len(st.PassEnv) == 0 {
		return nil // cgi's default
	}
	return append(cgi.DefaultInheritEnv(), st.PassEnv...)
}
