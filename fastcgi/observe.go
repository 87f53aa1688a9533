package fastcgi

import (
	"sync/atomic"
)

// ClientStats is a snapshot of a [Client]'s connections, for metrics and
// status pages.
type ClientStats struct {
	// Active counts the connections carrying a request (those being
	// dialled included), Idle those kept for the next request.
	Active, Idle int
	// Requests counts the requests in progress; Multiplexed those of them
	// that share connections (request-ID multiplexing).
	Requests, Multiplexed int
}

// clientState is what Stats needs to know of a Client's set-up.
type clientState struct {
	ready atomic.Bool // init is done: slots and mpx may be read
}

// Stats returns a snapshot of c's connections. Before c's first request it
// is all zeros: Stats never connects.
func (c *Client) Stats() ClientStats {
	if !c.state.ready.Load() {
		return ClientStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := ClientStats{Idle: len(c.idle), Requests: c.slots.Running()}
	for _, mc := range c.mpx {
		mc.mu.Lock()
		n, dead := len(mc.streams), mc.dead != nil
		mc.mu.Unlock()
		switch {
		case dead:
		case n == 0:
			st.Idle++
		default:
			st.Active++
			st.Multiplexed += n
		}
	}
	// Without multiplexing, each request in progress holds a connection.
	st.Active += max(0, st.Requests-st.Multiplexed)
	return st
}
