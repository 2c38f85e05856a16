package proxy

import (
	"bytes"
	"time"

	"golang.org/x/sys/unix"
)

// lingerTimeout bounds how long a session's last output may take to reach
// a client after the session has ended on an event loop.
const lingerTimeout = 5 * time.Second

// closeClient closes the client's descriptor of a session ending on a loop.
// Output still queued for the client (the end of a result, the session's
// last words such as a FATAL) is first written by a goroutine, for up to
// lingerTimeout: the loop never blocks, and closing at once lost it when
// the client's socket was full (a bare EOF mid-result, found by the soak).
func (ls *loopSession) closeClient() {
	d := &ls.s2c
	if d.sent >= len(d.p.out) {
		unix.Close(ls.cfd)
		return
	}
	rest := bytes.Clone(d.p.out[d.sent:])
	unix.EpollCtl(ls.l.epfd, unix.EPOLL_CTL_DEL, ls.cfd, nil)
	go lingerWrite(ls.cfd, rest, lingerTimeout)
}

// lingerWrite writes b to fd in blocking mode with a send timeout, then
// closes fd.
func lingerWrite(fd int, b []byte, timeout time.Duration) {
	defer unix.Close(fd)
	if unix.SetNonblock(fd, false) != nil {
		return
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return
		}
		b = b[n:]
	}
}
