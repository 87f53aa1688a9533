package cgi

import (
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/rs/zerolog"
)

// RequestObserver learns what happens to one request inside the handlers
// of this package and of packages fastcgi and scgi: when it waits for a
// slot, which script or application serves it, and how that ended. A
// gateway puts one in the request's context with [WithObserver] to count
// requests in its metrics and list them on its status page (ferry's bridge
// does). The methods are called on the goroutine serving the request;
// state they share with other goroutines is theirs to guard.
type RequestObserver interface {
	// QueueEnter is called when the request finds every script slot or
	// connection to the application taken and must wait; QueueLeave when
	// that wait ends, with a slot or without.
	QueueEnter()
	QueueLeave()
	// ScriptStarted is called when the script process has started: its
	// pid, the script, and how long starting it took (fork and exec).
	ScriptStarted(pid int, s Script, spawn time.Duration)
	// ScriptEnded is called once the script process has been reaped, with
	// its exit status and, if the handler stopped it, why.
	ScriptEnded(state *os.ProcessState, stop StopCause)
	// Forwarded is called when the request goes to a long-lived
	// application ([Forwarder]) for script s.
	Forwarded(s Script)
	// Failed is called when the handler answers status itself (500, 502,
	// 503 or 504) because of err on the script's or application's side.
	Failed(status int, err error)
}

// StopCause says why a [Handler] stopped a script before it exited by
// itself.
type StopCause uint8

// Why a script was stopped.
const (
	// NotStopped: the script exited by itself (a crash included).
	NotStopped StopCause = iota
	// StoppedTimeout: the script ran past [Handler.Timeout].
	StoppedTimeout
	// StoppedClientGone: the request ended first: the client went away,
	// or the server shut down.
	StoppedClientGone
	// StoppedBadResponse: the script's response was unusable, so nothing
	// more of it was read.
	StoppedBadResponse
)

var stopCauseNames = [...]string{
	NotStopped:         "none",
	StoppedTimeout:     "timeout",
	StoppedClientGone:  "client_gone",
	StoppedBadResponse: "bad_response",
}

// String names the cause as metrics label it.
func (c StopCause) String() string {
	if int(c) < len(stopCauseNames) {
		return stopCauseNames[c]
	}
	return "StopCause(" + strconv.Itoa(int(c)) + ")"
}

type observerKey struct{}

// WithObserver returns a copy of ctx carrying o, which the handlers of
// cgi, fastcgi and scgi serving a request with that context tell what
// happens to it.
func WithObserver(ctx context.Context, o RequestObserver) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}

// ObserverFrom returns the RequestObserver ctx carries, or one that does
// nothing: never nil.
func ObserverFrom(ctx context.Context) RequestObserver {
	if o, ok := ctx.Value(observerKey{}).(RequestObserver); ok {
		return o
	}
	return noObserver{}
}

// RequestLogger is a [RequestObserver] that also gives the request's
// logger, whose lines name the request. A gateway that gives each request
// a logger this way builds it only when something is logged, rather than
// on every request as zerolog's WithContext would have it.
type RequestLogger interface {
	RequestObserver
	Logger() *zerolog.Logger
}

// LoggerFrom returns the logger of the request whose context is ctx: the
// one zerolog's WithContext put in it, else the one its observer gives if
// the observer is a [RequestLogger], else def.
func LoggerFrom(ctx context.Context, def *zerolog.Logger) *zerolog.Logger {
	if l := zerolog.Ctx(ctx); l.GetLevel() != zerolog.Disabled {
		return l
	}
	if o, ok := ctx.Value(observerKey{}).(RequestLogger); ok {
		if l := o.Logger(); l != nil {
			return l
		}
	}
	return def
}

// noObserver is the RequestObserver of a request nobody observes.
type noObserver struct{}

func (noObserver) QueueEnter()                              {}
func (noObserver) QueueLeave()                              {}
func (noObserver) ScriptStarted(int, Script, time.Duration) {}
func (noObserver) ScriptEnded(*os.ProcessState, StopCause)  {}
func (noObserver) Forwarded(Script)                         {}
func (noObserver) Failed(int, error)                        {}

// start starts the script, telling the request's observer its pid and how
// long starting it took.
func (run *scriptRun) startProcess(limits []rlimit) error {
	t := time.Now()
	err := startScript(run.cmd, limits)
	if err == nil {
		ObserverFrom(run.r.Context()).ScriptStarted(run.cmd.Process.Pid, run.s, time.Since(t))
	}
	return err
}

// ended tells the request's observer that the script has been reaped, and
// why it was stopped if it was; outErr is the error that ended the
// response, if any.
func (run *scriptRun) ended(outErr error) {
	ObserverFrom(run.r.Context()).ScriptEnded(run.cmd.ProcessState, run.stopCause(outErr))
}

// stopCause says why the reaped script was stopped: a timeout, the
// request's end, or a response no longer read. A script that exited, or
// died of a signal other than the SIGTERM and SIGKILL stop sends (a crash),
// was not.
func (run *scriptRun) stopCause(outErr error) StopCause {
	var ce *ClientError
	var ws syscall.WaitStatus
	if st := run.cmd.ProcessState; st != nil {
		ws, _ = st.Sys().(syscall.WaitStatus)
	}
	switch {
	case run.timedOut.Load():
		return StoppedTimeout
	case !ws.Signaled() || (ws.Signal() != syscall.SIGTERM && ws.Signal() != syscall.SIGKILL):
		return NotStopped
	case run.r.Context().Err() != nil, errors.As(outErr, &ce):
		return StoppedClientGone
	case outErr != nil:
		return StoppedBadResponse
	}
	return NotStopped
}
