package bridge

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of an upstream group's options.
const (
	defaultMaxFails       = 1
	defaultFailTimeout    = 10 * time.Second
	defaultHealthInterval = 5 * time.Second
	defaultHealthTimeout  = 2 * time.Second
	defaultHealthPasses   = 2
	defaultHealthFails    = 2
)

// groupPolicies are the values of the policy option.
var groupPolicies = []string{"least_busy", "round_robin", "random_two"}

// groupOptions are the options of an upstream group: the backends of a
// mount given as a comma-separated list (or as a list in the configuration
// file), or one backend with any of these options. They apply to the whole
// group; max_conns and the kind's other options apply to each backend.
func groupOptions() []Option {
	return []Option{
		{Name: "policy", Type: String, Values: groupPolicies, Default: "least_busy",
			Doc: "how a backend is picked: least_busy (fewest requests in flight for its weight), round_robin (weighted), random_two (the less busy of two at random)"},
		{Name: "sticky", Type: String, Default: "none",
			Doc: "keep a client on one backend while it is up: addr (a hash of REMOTE_ADDR) or cookie:NAME (a cookie ferry sets, naming the backend)"},
		{Name: "weights", Type: String, Default: "1 each",
			Doc: "the backends' weights, comma-separated in the order of the list, such as 3,1"},
		{Name: "max_fails", Type: Count, Default: "1",
			Doc: "failures within fail_timeout that mark a backend down for fail_timeout (0: never; never the group's lone backend, as nginx's single server); refused or reset connections, OVERLOADED, timeouts and malformed answers count"},
		{Name: "fail_timeout", Type: Duration, Default: "10s", Doc: "the window max_fails counts in, and how long a backend stays down"},
		{Name: "fail_on_5xx", Type: Bool, Default: "false", Doc: "an answer of 500 and up from the application counts as a failure too"},
		{Name: "idempotent", Type: Bool, Default: "false",
			Doc: "a POST, PATCH or LOCK may go to another backend too when the connection broke, or read_timeout passed, before the answer's head was whole, as a request of any other method always may (with its body, if that is at most 64 KiB long; nginx's non_idempotent)"},
		{Name: "health", Type: String, Default: "none",
			Doc: "a path checked in the backend's own protocol every health_interval: a FastCGI request (php-fpm's ping.path), an SCGI request, an HTTP GET"},
		{Name: "health_interval", Type: Duration, Default: "5s", Doc: "time between two health checks of a backend"},
		{Name: "health_timeout", Type: Duration, Default: "2s", Doc: "how long a health check may take"},
		{Name: "health_status", Type: PositiveInt, Default: "any 2xx", Doc: "the status a passing health check answers"},
		{Name: "health_body", Type: String, Default: "anything", Doc: "text a passing health check's body contains, such as pong"},
		{Name: "health_passes", Type: PositiveInt, Default: "2", Doc: "passing checks in a row that bring a down backend back"},
		{Name: "health_fails", Type: PositiveInt, Default: "2", Doc: "failing checks in a row that take a backend down"},
		{Name: "slow_start", Type: Duration, Default: "none", Doc: "a backend coming back up gets its weight ramped up over this time"},
		{Name: "resolve", Type: Duration, Default: "never: a backend per name, resolved at each connection; SRV records once, at start",
			Doc: "re-resolve the backends' host names, and SRV records (an address such as fastcgi://_php._tcp.example.org, without a port), this often; the group follows the answers: a backend per address, those gone drained"},
	}
}

// groupOptionNames is the set of group option names.
var groupOptionNames = func() map[string]bool {
	m := make(map[string]bool)
	for _, o := range groupOptions() {
		m[o.Name] = true
	}
	return m
}()

// isGroup reports whether m's backend is an upstream group: several
// backends, an SRV record's, or one with group options or options of its
// own.
func (m Mount) isGroup() bool {
	if len(m.More) > 0 || len(m.FirstOptions) > 0 || isSRV(m.Backend) {
		return true
	}
	for k := range m.Backend.Query {
		if groupOptionNames[k] {
			return true
		}
	}
	return false
}

// members returns the addresses of m's backends, first to last.
func (m Mount) members() []Address {
	return append([]Address{m.Backend}, m.More...)
}

// backendList spells m's backends without their options, comma-separated:
// the backend label of a group's metrics.
func (m Mount) backendList() string {
	names := make([]string, 0, 1+len(m.More))
	for _, a := range m.members() {
		name, _, _ := strings.Cut(a.String(), "?")
		names = append(names, name)
	}
	return strings.Join(names, ",")
}

// parseBackends parses a mount's backend: one address, or a group spelt as
// a comma-separated list of addresses of one kind whose options, after the
// last address's "?", apply to the group:
//
//	fastcgi://10.0.0.1:9000,fastcgi://10.0.0.2:9000?policy=least_busy&max_fails=1
//
// It returns the first address (holding the options) and the others.
func parseBackends(s string) (Address, []Address, error) {
	list, query, hasQuery := strings.Cut(s, "?")
	if !strings.Contains(list, ",") {
		a, err := parseAddress(s)
		return a, nil, err
	}
	var all []Address
	for i, part := range strings.Split(list, ",") {
		if part == "" {
			return Address{}, nil, fmt.Errorf("backend %d of the list is empty", i+1)
		}
		a, err := parseAddress(part)
		if err != nil {
			return Address{}, nil, fmt.Errorf("backend %d (%s): %w", i+1, part, err)
		}
		all = append(all, a)
	}
	if hasQuery {
		q, err := url.ParseQuery(query)
		if err != nil {
			return Address{}, nil, fmt.Errorf("options: %w", err)
		}
		all[0].Query = q
	}
	return all[0], all[1:], nil
}

// checkGroup checks a group's backends beyond what checkBackend checks of
// the first: one kind of back that can be grouped, per-backend options
// that are weight and max_conns only, weights that match the list, and a
// sticky spelling ferry knows.
func checkGroup(m Mount, k Backend) error {
	if !m.isGroup() {
		return nil
	}
	if !k.Group {
		return fmt.Errorf("%s backends cannot form a group", m.Backend.Scheme)
	}
	for i, a := range m.More {
		ka, ok := backendFor(a.Scheme)
		if !ok || ka.Schemes[0] != k.Schemes[0] {
			return fmt.Errorf("backend %d (%s) is not of the group's kind (%s)", i+2, a, strings.Join(k.Schemes, ", "))
		}
		if err := checkMemberOptions(a.Query); err != nil {
			return fmt.Errorf("backend %d (%s): %w", i+2, a, err)
		}
	}
	if err := checkMemberOptions(m.FirstOptions); err != nil {
		return fmt.Errorf("backend 1 (%s): %w", m.Backend, err)
	}
	seen := map[string]int{}
	for i, a := range m.members() {
		name := memberName(a)
		if j, ok := seen[name]; ok {
			return fmt.Errorf("backend %d (%s) repeats backend %d; give it a weight instead", i+1, name, j+1)
		}
		seen[name] = i
	}
	q := m.Backend.Query
	if w := q.Get("weights"); q.Has("weights") {
		ws := strings.Split(w, ",")
		if len(ws) != 1+len(m.More) {
			return fmt.Errorf("weights=%q: %d weights for %d backends", w, len(ws), 1+len(m.More))
		}
		for _, x := range ws {
			if n, err := strconv.Atoi(x); err != nil || n <= 0 {
				return fmt.Errorf("weights=%q: want positive numbers separated by commas", w)
			}
		}
		for i := range 1 + len(m.More) {
			if m.memberOwn(i).Has("weight") {
				return errors.New("weights given both for the group and for a backend")
			}
		}
	}
	if s := q.Get("sticky"); q.Has("sticky") && s != "addr" {
		name, ok := strings.CutPrefix(s, "cookie:")
		if !ok || name == "" || strings.ContainsAny(name, " \t\r\n;,=\"") {
			return fmt.Errorf("sticky=%q: want addr or cookie:NAME", s)
		}
	}
	if q.Has("health") && !strings.HasPrefix(q.Get("health"), "/") {
		return fmt.Errorf("health=%q: want a path starting with /", q.Get("health"))
	}
	return nil
}

// memberOptions are the options a backend of a group may carry itself (in
// the configuration file's list of backend tables).
func memberOptions() []Option {
	return []Option{
		{Name: "weight", Type: PositiveInt, Default: "1", Doc: "the backend's share of the requests, relative to the others'"},
		{Name: "max_conns", Type: PositiveInt, Default: "the group's", Doc: "requests in progress at once on this backend"},
	}
}

// checkMemberOptions checks the options of a group's backend other than
// the first.
func checkMemberOptions(q url.Values) error {
	_, err := checkOptions(q, memberOptions(), "a backend of a group")
	return err
}

// memberWeight returns the weight of backend i of m's group.
func (m Mount) memberWeight(i int) int {
	q := m.Backend.Query
	if q.Has("weights") {
		n, _ := strconv.Atoi(strings.Split(q.Get("weights"), ",")[i]) // checked by checkGroup
		return n
	}
	if n, err := strconv.Atoi(m.memberOwn(i).Get("weight")); err == nil && n > 0 {
		return n
	}
	return 1
}

// memberOwn returns the options backend i of m's group carries itself.
func (m Mount) memberOwn(i int) url.Values {
	if i == 0 {
		return m.FirstOptions
	}
	return m.More[i-1].Query
}

// memberQuery returns the options backend i of m's group is built with:
// the kind's options of the group (those not about the group), with the
// backend's own max_conns over the group's.
func (m Mount) memberQuery(i int) url.Values {
	q := url.Values{}
	for k, v := range m.Backend.Query {
		if !groupOptionNames[k] && k != "weight" {
			q[k] = v
		}
	}
	if own := m.memberOwn(i); own.Has("max_conns") {
		q.Set("max_conns", own.Get("max_conns"))
	}
	return q
}

// checkMount checks m's backend, or its group of backends.
func checkMount(m Mount) error {
	k, _, err := checkBackend(m.Backend)
	if err == nil {
		err = checkNeeded(k, m.Backend.Query)
	}
	if err == nil {
		err = checkGroup(m, k)
	}
	return err
}
