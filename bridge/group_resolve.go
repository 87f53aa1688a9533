package bridge

import (
	"context"
	"net"
	"slices"
	"time"
)

// groupResolver re-resolves the host names of a group's backends (the
// resolve option): each name becomes a backend per address, and the group
// follows the answers, as in front of a Kubernetes headless Service.
// Backends whose address went away are drained: they take no new request,
// and those in flight finish.
type groupResolver struct {
	every     time.Duration
	addrs     []Address           // the backends as configured
	opts      func(i int) options // the options of configured backend i
	weight    func(i int) int     // its weight
	newMember func(Address, options) (*member, error)
	known     map[string]*member // the backends made so far, by address
	from      map[int][]*member  // configured backend i's last answer
}

// loop re-resolves every r.every until ctx ends.
func (r *groupResolver) loop(ctx context.Context, g *group) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.resolve(ctx, g)
		}
	}
}

// resolve looks the names up and sets the group's backends. A failed
// lookup keeps that name's backends of the last answer. It runs on one
// goroutine at a time (Server.startGroups, then loop).
func (r *groupResolver) resolve(ctx context.Context, g *group) {
	if r.known == nil {
		r.known, r.from = make(map[string]*member), make(map[int][]*member)
		for _, m := range g.list() {
			r.known[m.name] = m
		}
	}
	var list []*member
	for i, a := range r.addrs {
		host, port, err := net.SplitHostPort(a.Host)
		if a.Network() != "tcp" || err != nil || net.ParseIP(host) != nil {
			name := memberName(a)
			if m := r.known[name]; m != nil {
				list = append(list, m)
			}
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ips, err := net.DefaultResolver.LookupHost(lctx, host)
		cancel()
		if err != nil || len(ips) == 0 {
			g.log.Warn().Err(err).Str("mount", g.prefix).Str("host", host).Msg("ferry: resolving a backend's name failed; keeping its last addresses")
			list = append(list, r.from[i]...)
			continue
		}
		slices.Sort(ips)
		var got []*member
		for _, ip := range ips {
			b := a
			b.Host, b.Query = net.JoinHostPort(ip, port), nil
			name := memberName(b)
			m := r.known[name]
			if m == nil {
				if m, err = r.newMember(b, r.opts(i)); err != nil {
					g.log.Error().Err(err).Str("mount", g.prefix).Str("backend", name).Msg("ferry: adding a resolved backend")
					continue
				}
				m.name, m.weight, m.cookie = name, r.weight(i), cookieValue(name)
				r.known[name] = m
				g.log.Info().Str("mount", g.prefix).Str("backend", name).Str("host", host).Msg("ferry: backend added by resolution")
			}
			m.draining.Store(false)
			got = append(got, m)
		}
		r.from[i] = got
		list = append(list, got...)
	}
	for _, m := range g.list() {
		if !slices.Contains(list, m) {
			m.draining.Store(true)
			delete(r.known, m.name)
			g.log.Info().Str("mount", g.prefix).Str("backend", m.name).Msg("ferry: backend removed by resolution; draining")
		}
	}
	g.members.Store(&list)
}

// memberName is a backend's name: its address without options.
func memberName(a Address) string {
	a.Query = nil
	return a.String()
}
