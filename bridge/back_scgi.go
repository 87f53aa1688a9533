package bridge

import (
	"net/http"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/defaults"
	"github.com/ferrygw/ferry/scgi"
)

// scgiBackend reaches an SCGI application (uwsgi --scgi-socket, rtorrent's
// XML-RPC port).
func scgiBackend() Backend {
	return Backend{
		Schemes: []string{"scgi", "scgi+unix"},
		Summary: "an SCGI application such as uwsgi --scgi-socket",
		Options: []Option{
			{Name: "max_conns", Type: PositiveInt, Default: "64", Doc: "requests in progress at once, the application's worker count; further requests queue in ferry"},
			readTimeoutOption(),
		},
		Group:    true,
		Settings: forwardSettings(),
		build:    buildSCGI,
	}
}

func buildSCGI(b *builder, m Mount, o options) (http.Handler, error) {
	if !m.isGroup() {
		return scgi.NewHandler(b.scgiClient(m.Backend, o), cgi.Mount{Prefix: m.Prefix, Root: b.s.cfg.Root}, b.gateway()), nil
	}
	g, err := b.newGroup(m, o, func(a Address, o options) (*member, error) {
		c := b.scgiClient(a, o)
		return &member{t: c, limit: int64(defaults.Or(c.MaxConns, scgi.DefaultClientConns))}, nil
	})
	if err != nil {
		return nil, err
	}
	app := scgi.NewHandler(nil, cgi.Mount{Prefix: m.Prefix, Root: b.s.cfg.Root}, b.gateway())
	app.Transport = g
	g.headLimits, g.endCloses = app.HeaderLimits, true
	return app, nil
}

// scgiClient returns the client of SCGI backend a.
func (b *builder) scgiClient(a Address, o options) *scgi.Client {
	addr := a.Host
	if a.Network() == "unix" {
		addr = a.Path
	}
	return &scgi.Client{Network: a.Network(), Address: addr, MaxConns: o.positive("max_conns"),
		QueueTimeout: b.st.QueueTimeout, ReadTimeout: o.duration("read_timeout"), Logger: b.logger("scgi-client")}
}
