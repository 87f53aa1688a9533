package bridge

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/ferrygw/ferry/cgi"
	"github.com/rs/zerolog"
)

// Backend describes one kind of back a mount can name: the schemes that
// select it, the options it takes, and how its handler is built. Each kind
// lives in its own file (back_*.go); [Backends] is the table.
type Backend struct {
	// Schemes are the address schemes of this kind, such as "fastcgi" and
	// "fastcgi+unix".
	Schemes []string
	// Summary says what the kind reaches, in one line.
	Summary string
	// Options are the options its addresses take after "?".
	Options []Option
	// Settings names the settings its handlers use ([Keys] of the
	// "defaults" table): those a mount of this kind may set itself.
	Settings []string
	// Group says backends of this kind can form an upstream group: a
	// mount's list of them, taking [groupOptions] besides Options.
	Group bool

	build func(b *builder, m Mount, o options) (http.Handler, error)
}

// Backends returns the table of the kinds of back ferry can mount, in the
// order help texts list them.
func Backends() []Backend {
	return []Backend{cgiBackend(), fastcgiBackend(), fastcgiExecBackend(), scgiBackend(), wsgiBackend(), psgiBackend(), httpBackend()}
}

// backendFor returns the kind of back of scheme name.
func backendFor(name string) (Backend, bool) {
	for _, k := range Backends() {
		if slices.Contains(k.Schemes, name) {
			return k, true
		}
	}
	return Backend{}, false
}

// frontOptions returns the options a front address of scheme sc takes.
func frontOptions(sc *scheme) []Option { return sc.options }

// checkBackend checks that a can be mounted: a scheme with a kind of back,
// and options that kind declares.
func checkBackend(a Address) (Backend, options, error) {
	sc := a.scheme()
	k, ok := backendFor(a.Scheme)
	if sc == nil || !sc.back || !ok {
		return Backend{}, options{}, fmt.Errorf("%s is not a backend; ferry's backends are %s", a.Scheme, schemeNames(func(s *scheme) bool { return s.back }))
	}
	what := schemeNames(func(s *scheme) bool { return s == sc })
	if !k.Group {
		o, err := checkOptions(a.Query, k.Options, what)
		return k, o, err
	}
	// The group's options apart, so that a misspelt option is told
	// against the kind's own.
	own, grp := url.Values{}, url.Values{}
	for name, v := range a.Query {
		if groupOptionNames[name] {
			grp[name] = v
		} else {
			own[name] = v
		}
	}
	if _, err := checkOptions(own, k.Options, what); err != nil {
		return k, options{}, err
	}
	if _, err := checkOptions(grp, groupOptions(), what+" groups"); err != nil {
		return k, options{}, err
	}
	return k, options{q: a.Query}, nil
}

// allOptions returns the options a mount of kind k takes: its own, and
// those of a group when its backends can form one.
func (k Backend) allOptions() []Option {
	if !k.Group {
		return k.Options
	}
	return append(slices.Clone(k.Options), groupOptions()...)
}

// builder builds the handlers of one Server's mounts.
type builder struct {
	s      *Server
	st     Settings     // the settings of the mount being built
	static http.Handler // the document root's files, nil without --root
	stats  *mountStats  // the figures of the mount being built, nil without an admin listener
	group  *group       // the upstream group of the mount being built, if it is one
	// onRouter holds what needs the finished router: the handlers that
	// serve local redirects (RFC 3875 § 6.2.2) through every mount.
	onRouter []func(http.Handler)
}

// logger returns the process logger for a component: a client of a pool
// that a reload keeps lives on with it.
func (b *builder) logger(component string) *zerolog.Logger {
	l := b.s.processLog().With().Str("component", component).Logger()
	return &l
}

// serverSoftware is SERVER_SOFTWARE.
func (b *builder) serverSoftware() string {
	if b.s.cfg.Version != "" {
		return "ferry/" + b.s.cfg.Version
	}
	return cgi.DefaultServerSoftware
}

// scriptHandler returns a CGI runner with the server's settings and its
// own concurrency limit.
func (b *builder) scriptHandler() *cgi.Handler {
	st := &b.st
	return &cgi.Handler{
		Settings:          b.gateway(),
		InheritEnv:        st.inheritEnv(),
		PassAuthorization: st.PassAuthorization,
		DocumentRoot:      b.s.cfg.Root,
		Timeout:           st.ScriptTimeout,
		KillGrace:         st.KillGrace,
		MaxConcurrent:     st.MaxConcurrent,
		MaxQueue:          st.MaxQueue,
		QueueTimeout:      st.QueueTimeout,
		User:              st.User,
		Group:             st.Group,
		KeepBackground:    st.KeepBackground,
		RLimitCPU:         max(st.RLimitCPU, 0),
		RLimitAS:          st.RLimitAS,
		RLimitNProc:       st.RLimitNProc,
		RLimitNoFile:      st.RLimitNoFile,
		MaxOutput:         st.MaxOutput,
	}
}

// gateway returns the settings every request to a script or an
// application of the mount shares.
func (b *builder) gateway() cgi.Settings {
	st := &b.st
	return cgi.Settings{
		Env:            st.Env,
		ServerSoftware: b.serverSoftware(),
		BodyLimits:     cgi.BodyLimits{Max: st.MaxRequestBody, Memory: st.SpoolMemory, TempDir: st.TempDir},
		HeaderLimits:   cgi.HeaderLimits{MaxLine: st.MaxHeaderLine},
		Logger:         &b.s.log,
	}
}

// workerEnv is the environment of spawned workers: the inherited allowlist
// and Env, as scripts get.
func (b *builder) workerEnv() []string {
	st := &b.st
	return append(cgi.InheritedEnv(st.inheritEnv()), st.Env...)
}
