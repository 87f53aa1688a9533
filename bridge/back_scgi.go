package bridge

import (
	"net/http"

	"github.com/ferrygw/ferry/cgi"
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
		Settings: forwardSettings(),
		build:    buildSCGI,
	}
}

func buildSCGI(b *builder, m Mount, o options) (http.Handler, error) {
	st := &b.st
	addr := m.Backend.Host
	if m.Backend.Network() == "unix" {
		addr = m.Backend.Path
	}
	client := &scgi.Client{Network: m.Backend.Network(), Address: addr, MaxConns: o.positive("max_conns"),
		QueueTimeout: st.QueueTimeout, ReadTimeout: o.duration("read_timeout"), Logger: b.logger("scgi-client")}
	return scgi.NewHandler(client, cgi.Mount{Prefix: m.Prefix, Root: b.s.cfg.Root}, b.gateway()), nil
}
