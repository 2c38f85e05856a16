package pgtest

// StopServer shuts the server down (fast mode) and leaves its data in
// place, so that StartServer can bring it back: an upstream outage for
// tests of what a client sees meanwhile.
func (c *Cluster) StopServer() error { return c.stopServer() }

// StartServer starts a server stopped by StopServer on the same port and
// data directory and waits until it accepts connections.
func (c *Cluster) StartServer() error { return c.start() }

// Ping connects once with dsn and runs SELECT 1, for callers that time
// how soon a server (or a proxy in front of it) answers.
func Ping(dsn string) error { return ping(dsn) }
