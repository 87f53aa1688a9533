package migrate

import (
	"net"
	"strconv"
	"strings"
)

// fpmPool is one [pool] of a php-fpm pool file given as input.
type fpmPool struct {
	name    string
	listen  *Directive // listen = ...; nil if the pool has none
	allowed string     // listen.allowed_clients
	keys    []*Directive
}

// parsePool reads a php-fpm pool file (INI: [name] then key = value
// lines), or returns false if data is not one: it must open with a
// [section] and set listen.
func parsePool(name string, data []byte) ([]*fpmPool, bool) {
	var pools []*fpmPool
	var cur *fpmPool
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == ';' || line[0] == '#' {
			continue
		}
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			cur = &fpmPool{name: line[1 : len(line)-1]}
			pools = append(pools, cur)
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if cur == nil || !ok {
			return nil, false
		}
		k, v = strings.TrimSpace(k), strings.Trim(strings.TrimSpace(v), `"`)
		d := &Directive{File: name, Line: i + 1, Name: k, Args: []string{v}}
		switch k {
		case "listen":
			cur.listen = d
		case "listen.allowed_clients":
			cur.allowed = v
		}
		cur.keys = append(cur.keys, d)
	}
	for _, p := range pools {
		if p.listen != nil {
			return pools, true
		}
	}
	return nil, false
}

// splitPools reads the pool files among the inputs, returning the other
// inputs (which the loader reads again: each counts twice against
// Limits.MaxFiles).
func (g *mig) splitPools(files []string) ([]string, error) {
	var rest []string
	for _, f := range files {
		data, err := g.r.read(f)
		if err != nil {
			return nil, err
		}
		if pools, ok := parsePool(f, data); ok {
			g.pools = append(g.pools, pools...)
			continue
		}
		rest = append(rest, f)
	}
	return rest, nil
}

// poolBackend is the ferry backend of the first pool given, or "".
func (g *mig) poolBackend() (string, *Directive) {
	for _, p := range g.pools {
		if p.listen == nil {
			continue
		}
		l := p.listen.Args[0]
		switch {
		case strings.HasPrefix(l, "/"):
			return "fastcgi+unix://" + l, p.listen
		case isPort(l):
			return "fastcgi://127.0.0.1:" + l, p.listen
		default:
			host, port, err := net.SplitHostPort(l)
			if err != nil {
				return "", nil
			}
			if host == "" || host == "0.0.0.0" || host == "::" {
				host = "127.0.0.1"
			}
			return "fastcgi://" + net.JoinHostPort(host, port), p.listen
		}
	}
	return "", nil
}

func isPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n > 0 && n < 65536
}

// reportPools records the pool files' lines and whether a pool listens
// beyond this machine.
func (g *mig) reportPools(used *Directive) {
	for _, p := range g.pools {
		for _, d := range p.keys {
			switch {
			case d == used:
				g.entry(d, Translated, "", "pool [%s]: the PHP mount's backend", p.name)
			case d == p.listen:
				g.entry(d, Kept, "", "pool [%s]: php-fpm keeps listening there", p.name)
			default:
				g.entry(d, Kept, "", "php-fpm's own setting: the pool keeps it")
			}
		}
		if p.listen == nil {
			continue
		}
		l := p.listen.Args[0]
		host := ""
		if isPort(l) {
			host = "0.0.0.0"
		} else if h, _, err := net.SplitHostPort(l); err == nil {
			host = h
		}
		if host == "" && !strings.HasPrefix(l, "/") {
			host = "0.0.0.0"
		}
		if host != "" && !loopback(host) && !loopbackOnly(p.allowed) {
			g.finding(p.listen, "php-fpm-exposed", "listen = /run/php/"+p.name+".sock (or 127.0.0.1:PORT), or set listen.allowed_clients = 127.0.0.1",
				"pool [%s] listens on %s, every interface: anyone who reaches the port can have php-fpm run any file as PHP", p.name, l)
		}
	}
}

// loopbackOnly reports whether a listen.allowed_clients list names only
// this machine.
func loopbackOnly(list string) bool {
	if list == "" {
		return false
	}
	for _, a := range strings.Split(list, ",") {
		if !loopback(strings.TrimSpace(a)) {
			return false
		}
	}
	return true
}
