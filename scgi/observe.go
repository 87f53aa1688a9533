package scgi

// ClientStats is a snapshot of a [Client]'s requests, for metrics and
// status pages.
type ClientStats struct {
	// Requests counts the requests in progress, each on a connection of
	// its own (SCGI has no keep-alive); those waiting for a slot are not
	// counted.
	Requests int
}

// Stats returns a snapshot of c's requests. It never connects.
func (c *Client) Stats() ClientStats {
	c.init()
	return ClientStats{Requests: c.slots.Running()}
}
