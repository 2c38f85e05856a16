package proxy

import (
	"bytes"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lingerTimeout bounds how long a session's last output may take to reach
// a client after the session has ended on an event loop; drainTimeout how
// long the proxy then reads what a client still sends.
const (
	lingerTimeout = 5 * time.Second
	drainTimeout  = time.Second
)

// closeClient closes the client's descriptor of a session ending on a loop.
// Output still queued for the client (the end of a result, the session's
// last words such as a FATAL) is first written by a goroutine, for up to
// lingerTimeout: the loop never blocks, and closing at once lost it when
// the client's socket was full (a bare EOF mid-result, found by the soak).
//
// A session that ends from the server's side (drainClient: its FATAL, the
// upstream lost, a shutdown) may have a client that is still sending, a
// COPY's data say. Closing a socket with input unread resets the
// connection, and the client's next send then fails with no word of the
// FATAL it was sent (the soak's "broken pipe" during COPY FROM STDIN). So
// the goroutine also half-closes the socket and reads and drops what the
// client still sends until it closes its end, for up to drainTimeout, as a
// web server's lingering close does.
func (ls *loopSession) closeClient() {
	d := &ls.s2c
	var rest []byte
	if d.sent < len(d.p.out) {
		rest = bytes.Clone(d.p.out[d.sent:])
	}
	if rest == nil && !ls.drainClient {
		unix.Close(ls.cfd)
		return
	}
	unix.EpollCtl(ls.l.epfd, unix.EPOLL_CTL_DEL, ls.cfd, nil)
	go linger(ls.cfd, rest, ls.drainClient)
}

// linger writes b to fd, then, when drain is set, half-closes it and reads
// until the peer closes; then it closes fd. fd moves to the runtime's
// poller first, so that a lingering session holds a parked goroutine and
// no thread (a server shutdown ends every idle session at once).
func linger(fd int, b []byte, drain bool) {
	f := os.NewFile(uintptr(fd), "client")
	c, err := net.FileConn(f) // a duplicate of fd, non-blocking, in the poller
	f.Close()
	if err != nil {
		return
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(lingerTimeout))
	if _, err := c.Write(b); err != nil || !drain {
		return
	}
	drainInput(c, drainTimeout)
}

// drainInput half-closes c (the peer reads everything sent so far, then
// EOF) and reads and drops its input until the peer closes, an error, or
// timeout.
func drainInput(c net.Conn, timeout time.Duration) {
	hc, ok := c.(interface{ CloseWrite() error })
	if !ok || hc.CloseWrite() != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(timeout))
	io.Copy(io.Discard, c)
}
