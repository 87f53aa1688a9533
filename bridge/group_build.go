package bridge

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/ferrygw/ferry/cgi"
	"github.com/ferrygw/ferry/internal/defaults"
)

// newGroup builds the upstream group of mount m, whose options are o, with
// newMember making each backend's transport from its address and options
// (the group's kind options, with the backend's own max_conns). It
// registers the group with the Server (checks, re-resolution, drain) and
// the admin listener's figures.
func (b *builder) newGroup(m Mount, o options, newMember func(Address, options) (*member, error)) (*group, error) {
	g := &group{
		prefix:      m.Prefix,
		policy:      o.str("policy"),
		maxFails:    o.count("max_fails", defaultMaxFails),
		failTimeout: o.duration("fail_timeout"),
		fail5xx:     o.boolean("fail_on_5xx"),
		idempotent:  o.boolean("idempotent"),
		slowStart:   o.duration("slow_start"),
		log:         *b.logger("group"),
		health: healthConfig{
			path:           o.str("health"),
			interval:       o.duration("health_interval"),
			timeout:        o.duration("health_timeout"),
			status:         o.positive("health_status"),
			body:           o.str("health_body"),
			passes:         o.positive("health_passes"),
			fails:          o.positive("health_fails"),
			protocol:       m.Backend.Protocol(),
			serverSoftware: b.serverSoftware(),
		},
	}
	g.queue.timeout = defaults.Or(b.st.QueueTimeout, cgi.DefaultQueueTimeout)
	if g.policy == "" {
		g.policy = "least_busy"
	}
	if g.failTimeout == 0 {
		g.failTimeout = defaultFailTimeout
	}
	if g.health.interval == 0 {
		g.health.interval = defaultHealthInterval
	}
	if g.health.timeout == 0 {
		g.health.timeout = defaultHealthTimeout
	}
	if g.health.passes == 0 {
		g.health.passes = defaultHealthPasses
	}
	if g.health.fails == 0 {
		g.health.fails = defaultHealthFails
	}
	if s := o.str("sticky"); s == "addr" {
		g.sticky = "addr"
	} else if name, ok := strings.CutPrefix(s, "cookie:"); ok {
		g.sticky = name
	}
	var list []*member
	for i, a := range m.members() {
		if isSRV(a) {
			continue // its backends come from its answers
		}
		mb, err := newMember(a, options{q: m.memberQuery(i)})
		if err != nil {
			return nil, err
		}
		mb.name = memberName(a)
		mb.weight = m.memberWeight(i)
		mb.cookie = cookieValue(mb.name)
		mb.draining.Store(b.s.drained[m.Prefix+" "+mb.name])
		list = append(list, mb)
	}
	g.members.Store(&list)
	if d := o.duration("resolve"); d > 0 || slices.ContainsFunc(m.members(), isSRV) {
		dns := b.s.cfg.Resolver
		if dns == nil {
			dns = net.DefaultResolver
		}
		g.resolver = &groupResolver{every: d, dns: dns, addrs: m.members(), opts: func(i int) options { return options{q: m.memberQuery(i)} },
			weight: m.memberWeight, newMember: newMember}
	}
	b.s.groups = append(b.s.groups, g)
	b.stats.watchGroup(g)
	b.group = g
	return g, nil
}

// startGroups starts the groups' health checks and re-resolution; the
// function it returns stops them and waits.
func (s *Server) startGroups() (stop func()) {
	if len(s.groups) == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, g := range s.groups {
		if g.resolver != nil {
			g.resolver.resolve(ctx, g) // the first answers before the first request
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.start(ctx)()
		}()
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// drainedBackends returns the group backends drained now, as "PREFIX
// BACKEND".
func (s *Server) drainedBackends() map[string]bool {
	var d map[string]bool
	for _, g := range s.groups {
		for _, m := range g.list() {
			if m.draining.Load() {
				if d == nil {
					d = make(map[string]bool)
				}
				d[g.prefix+" "+m.name] = true
			}
		}
	}
	return d
}
