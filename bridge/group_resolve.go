package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// lookupTimeout bounds one resolution of a backend's name.
const lookupTimeout = 5 * time.Second

// groupResolver resolves the names of a group's backends: host names the
// resolve option re-resolves, each becoming a backend per address, and
// SRV records (_service._proto.name), each becoming a backend per address
// of its targets of the lowest priority (RFC 2782: the others are
// backups). The group follows the answers, as in front of a Kubernetes
// headless Service. Backends whose address went away are drained: they
// take no new request, and those in flight finish.
type groupResolver struct {
	every     time.Duration // 0: once, at start
	dns       *net.Resolver
	addrs     []Address           // the backends as configured
	opts      func(i int) options // the options of configured backend i
	weight    func(i int) int     // its weight
	newMember func(Address, options) (*member, error)
	known     map[string]*member // the backends made so far, by address
	from      map[int][]*member  // configured backend i's last answer
}

// isSRV reports whether a names an SRV record: a TCP address whose host
// starts with "_" and has no port.
func isSRV(a Address) bool {
	return a.Network() == "tcp" && strings.HasPrefix(a.Host, "_") && !strings.Contains(a.Host, ":")
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
		addrs, err := r.lookup(ctx, a)
		switch {
		case err != nil:
			g.log.Warn().Err(err).Str("mount", g.prefix).Str("host", a.Host).Msg("ferry: resolving a backend's name failed; keeping its last addresses")
			list = append(list, r.from[i]...)
			continue
		case addrs == nil: // an IP address or a socket: as configured
			if m := r.known[memberName(a)]; m != nil {
				list = append(list, m)
			}
			continue
		}
		var got []*member
		for _, b := range addrs {
			name := memberName(b)
			m := r.known[name]
			if m == nil {
				if m, err = r.newMember(b, r.opts(i)); err != nil {
					g.log.Error().Err(err).Str("mount", g.prefix).Str("backend", name).Msg("ferry: adding a resolved backend")
					continue
				}
				m.name, m.weight, m.cookie = name, r.weight(i), cookieValue(name)
				r.known[name] = m
				g.log.Info().Str("mount", g.prefix).Str("backend", name).Str("host", a.Host).Msg("ferry: backend added by resolution")
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

// lookup returns the addresses configured backend a stands for now,
// sorted, or nil when a is not a name (an IP address, a unix socket).
func (r *groupResolver) lookup(ctx context.Context, a Address) ([]Address, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	var out []Address
	add := func(host, port string) error {
		ips, err := r.dns.LookupHost(ctx, host)
		if err != nil {
			return err
		}
		for _, ip := range ips {
			b := a
			b.Host, b.Query = net.JoinHostPort(ip, port), nil
			out = append(out, b)
		}
		return nil
	}
	if isSRV(a) {
		_, srvs, err := r.dns.LookupSRV(ctx, "", "", a.Host)
		if err != nil {
			return nil, err
		}
		for _, s := range srvs { // by priority, lowest first
			if s.Priority != srvs[0].Priority {
				break
			}
			if err := add(strings.TrimSuffix(s.Target, "."), strconv.Itoa(int(s.Port))); err != nil {
				return nil, fmt.Errorf("bridge: SRV target %s: %w", s.Target, err)
			}
		}
	} else {
		host, port, err := net.SplitHostPort(a.Host)
		if a.Network() != "tcp" || err != nil || net.ParseIP(host) != nil {
			return nil, nil
		}
		if err := add(host, port); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, errors.New("bridge: no address in the answer")
	}
	slices.SortFunc(out, func(x, y Address) int { return strings.Compare(x.Host, y.Host) })
	return slices.CompactFunc(out, func(x, y Address) bool { return x.Host == y.Host }), nil
}

// memberName is a backend's name: its address without options.
func memberName(a Address) string {
	a.Query = nil
	return a.String()
}
