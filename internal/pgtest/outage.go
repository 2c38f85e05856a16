package pgtest

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
)

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

// PauseServer stops the postmaster with SIGSTOP and returns a function
// that lets it go on (SIGCONT); calling it more than once is harmless.
// Meanwhile the kernel still completes TCP handshakes on the server's
// port, but nothing answers a startup packet: a server that accepts
// connections and hangs. Sessions already open keep their backends and
// work as before.
func (c *Cluster) PauseServer() (resume func(), err error) {
	if c.server == nil {
		return nil, errors.New("pgtest: pause: the server is not running")
	}
	p := c.server.cmd.Process
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return nil, fmt.Errorf("pgtest: pause: %w", err)
	}
	var once sync.Once
	return func() { once.Do(func() { _ = p.Signal(syscall.SIGCONT) }) }, nil
}
