package proxy

import (
	"bytes"
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

// linger writes b to fd in blocking mode, then, when drain is set, reads
// until the peer closes; then it closes fd.
func linger(fd int, b []byte, drain bool) {
	defer unix.Close(fd)
	if unix.SetNonblock(fd, false) != nil || !lingerWrite(fd, b, lingerTimeout) || !drain {
		return
	}
	drainInput(fd, drainTimeout)
}

// lingerWrite writes b to the blocking fd with a send timeout; it reports
// whether all of b was written.
func lingerWrite(fd int, b []byte, timeout time.Duration) bool {
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false
		}
		b = b[n:]
	}
	return true
}

// drainInput half-closes the blocking fd (the peer reads everything sent
// so far, then EOF) and reads and drops its input until the peer closes,
// an error, or timeout.
func drainInput(fd int, timeout time.Duration) {
	if unix.Shutdown(fd, unix.SHUT_WR) != nil {
		return
	}
	deadline := time.Now().Add(timeout)
	var buf [4096]byte
	for left := time.Until(deadline); left > 0; left = time.Until(deadline) {
		tv := unix.NsecToTimeval(left.Nanoseconds())
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		n, err := unix.Read(fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
	}
}
