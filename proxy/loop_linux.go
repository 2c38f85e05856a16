//go:build linux

package proxy

import (
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A loop relays many sessions on one locked OS thread with its own epoll
// set, calling recvfrom, sendto and epoll_wait as raw system calls so that the
// Go scheduler stays off the hot path (see doc.go for the measurements).
// Everything a loop owns (the sessions' descriptors and pumps) is touched
// only on the loop's thread; other goroutines post commands.
type loop struct {
	epfd   int
	wakeFd int // eventfd: posting a command wakes the loop

	mu        sync.Mutex
	cmds      []func()
	fdsClosed bool // set once the loop stopped: post does nothing

	ends    []*endpoint // indexed by file descriptor
	bufs    loopBufs
	quit    bool
	stopped chan struct{}
}

// endpoint is one descriptor of a loop session.
type endpoint struct {
	ls       *loopSession
	isClient bool
	events   uint32 // the interest registered in epoll now
}

// loopSession is a session being relayed by a loop.
type loopSession struct {
	s              *session
	l              *loop
	client, server *endpoint
	cfd, sfd       int
	c2s, s2c       direction
	done           chan struct{}
	closed         bool
	paused         bool // waiting for blocking work (wouldBlock): the client is not read
	// serverGone is set when a send to the server failed: the client is no
	// longer read, and the server's own event ends the session once what it
	// sent before it went (its FATAL) has been relayed.
	serverGone bool
	// drainClient is set when the session ends from the server's side:
	// the client may still be sending (linger_linux.go).
	drainClient bool
	clientH     handler
	serverH     handler
}

// direction is one way of a loop session: a pump plus the part of its
// output not yet written (the socket was full).
type direction struct {
	p       *pump
	sent    int
	blocked bool // output pending: reading the source is paused
}

func newLoop() (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	l := &loop{epfd: epfd, wakeFd: wfd, stopped: make(chan struct{}), bufs: newLoopBufs()}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wfd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wfd, &ev); err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

// post runs fn on the loop's thread; after the loop has stopped it does
// nothing. The wake-up is written under the lock, so it can never reach a
// descriptor number the stopped loop closed and the process reused.
func (l *loop) post(fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fdsClosed {
		return
	}
	l.cmds = append(l.cmds, fn)
	var one = [8]byte{1}
	unix.Write(l.wakeFd, one[:])
}

// closeFDs closes the loop's own descriptors once it has stopped.
func (l *loop) closeFDs() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fdsClosed = true
	unix.Close(l.wakeFd)
	unix.Close(l.epfd)
}

func (l *loop) run() {
	runtime.LockOSThread() // never unlocked: the thread exits with the loop
	defer close(l.stopped)
	defer l.closeFDs()
	events := make([]unix.EpollEvent, 256)
	var cmds []func()
	idle := 0 // raw waits in a row that found nothing
	for !l.quit {
		n := epollRaw(l.epfd, events, busyWaitMillis)
		if n == 0 {
			if idle++; idle >= idleWaits {
				n, idle = epollBlock(l.epfd, events), 0
			}
		} else {
			idle = 0
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if fd == l.wakeFd {
				var b [8]byte
				unix.Read(l.wakeFd, b[:])
				continue
			}
			if fd < len(l.ends) && l.ends[fd] != nil {
				l.ends[fd].ls.onEvent(l.ends[fd], events[i].Events)
			}
		}
		l.mu.Lock()
		cmds, l.cmds = l.cmds, cmds[:0]
		l.mu.Unlock()
		for _, fn := range cmds {
			fn()
		}
	}
}

// While busy, the loop waits in raw epoll_wait calls of at most
// busyWaitMillis; after idleWaits of them find nothing, it blocks through
// the runtime instead.
const (
	busyWaitMillis = 10
	idleWaits      = 5
)

// epollRaw waits for events without the runtime's system-call
// bookkeeping. The goroutine keeps its P meanwhile, so a wake-up goes
// straight back to the loop with no scheduler hand-off; the wait is bounded
// because the runtime cannot take a P from a raw call (its preemption
// signal ends the wait early, as EINTR).
func epollRaw(epfd int, events []unix.EpollEvent, millis int) int {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(epfd),
		uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), uintptr(millis), 0, 0)
	if errno != 0 {
		return 0
	}
	return int(n)
}

// epollBlock waits for events through the runtime, which hands the P to
// other goroutines meanwhile: an idle loop costs nothing and is never
// preempted. post wakes it through the eventfd.
func epollBlock(epfd int, events []unix.EpollEvent) int {
	n, err := unix.EpollWait(epfd, events, -1)
	if err != nil {
		return 0 // EINTR
	}
	return n
}

// rawRead and rawWrite receive and send on a socket with recvfrom and
// sendto, as PgBouncer does: on a socket they skip the file layer that
// read and write go through (file position lock, vfs dispatch), and
// MSG_NOSIGNAL makes a send to a closed peer fail with EPIPE instead of
// raising SIGPIPE for the runtime to swallow.
func rawRead(fd int, b []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
	return int(n), errno
}

func rawWrite(fd int, b []byte) (int, syscall.Errno) {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_NOSIGNAL, 0, 0)
	return int(n), errno
}

// detachFD takes a connection's socket out of the Go runtime: it returns a
// non-blocking duplicate of the descriptor and closes the original.
func detachFD(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(orig uintptr) { fd, dupErr = unix.Dup(int(orig)) }); err != nil {
		return -1, err
	}
	if dupErr != nil {
		return -1, dupErr
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	c.Close()
	return fd, nil
}

// relayOnLoop hands the session's two sockets to l and waits until the loop
// ends the session. It returns false, having changed nothing, when the
// sockets cannot be taken over (TLS, or not TCP).
func (s *session) relayOnLoop(l *loop) bool {
	if _, ok := s.client.(*net.TCPConn); !ok {
		return false
	}
	if _, ok := s.upstream.(*net.TCPConn); !ok {
		return false
	}
	cfd, err := detachFD(s.client)
	if err != nil {
		return false
	}
	sfd, err := detachFD(s.upstream)
	if err != nil {
		unix.Close(cfd)
		s.client.Close()
		return true // the client socket is gone; nothing left to relay
	}
	ls := &loopSession{s: s, l: l, cfd: cfd, sfd: sfd, done: make(chan struct{}),
		c2s: direction{p: s.fromClient}, s2c: direction{p: s.fromServer},
		clientH: clientHandler{s}, serverH: &serverHandler{s: s}}
	if m := s.masking; m != nil {
		m.nonBlocking = true
		ls.clientH, ls.serverH = maskedClient{m}, maskedServer{m, &serverHandler{s: s}}
	}
	s.onLoop.Store(ls)
	l.post(ls.register)
	<-ls.done
	return true
}

// register adds the session's descriptors to the loop and relays whatever
// the startup phase had already read.
func (ls *loopSession) register() {
	ls.client = &endpoint{ls: ls, isClient: true}
	ls.server = &endpoint{ls: ls}
	for _, e := range []struct {
		fd  int
		end *endpoint
	}{{ls.cfd, ls.client}, {ls.sfd, ls.server}} {
		for e.fd >= len(ls.l.ends) {
			ls.l.ends = append(ls.l.ends, nil)
		}
		ls.l.ends[e.fd] = e.end
		e.end.events = unix.EPOLLIN | unix.EPOLLRDHUP
		ev := unix.EpollEvent{Events: e.end.events, Fd: int32(e.fd)}
		if err := unix.EpollCtl(ls.l.epfd, unix.EPOLL_CTL_ADD, e.fd, &ev); err != nil {
			ls.end(true, err)
			return
		}
	}
	ls.pumpBuffered(&ls.c2s, ls.clientH, ls.sfd)
	ls.pumpBuffered(&ls.s2c, ls.serverH, ls.cfd)
	ls.settle(&ls.c2s) // the startup phase's buffers, when nothing is left in them
	ls.settle(&ls.s2c)
}

// pumpBuffered relays bytes a pump already holds.
func (ls *loopSession) pumpBuffered(d *direction, h handler, dst int) {
	if ls.closed || d.p.r == d.p.w {
		return
	}
	ls.relay(d, h, dst)
}

// relay handles the complete messages d's pump holds and writes the result
// to dst. A message that needs blocking work pauses the session.
func (ls *loopSession) relay(d *direction, h handler, dst int) {
	ls.l.bufs.lend(d.p)
	defer ls.settle(d)
	need, err := d.p.process(h)
	wb, blocked := err.(*wouldBlock) // returned as it is, never wrapped
	switch {
	case blocked:
		ls.flush(d, dst) // what came before it goes out
		ls.pause(wb)
		return
	case err != nil:
		ls.end(d == &ls.c2s, err)
		return
	}
	d.p.makeRoom(need)
	ls.flush(d, dst)
}

// settle gives the loop back the buffers d no longer needs.
func (ls *loopSession) settle(d *direction) {
	if ls.closed {
		return
	}
	ls.l.bufs.settle(d.p)
	ls.l.bufs.settleOut(d.p)
}

// pause stops reading the client while wb's work runs on a goroutine, then
// handles the waiting message again on the loop. The server side goes on.
func (ls *loopSession) pause(wb *wouldBlock) {
	ls.paused = true
	ls.interest(ls.client, unix.EPOLLIN|unix.EPOLLRDHUP, false)
	go func() {
		wb.warm()
		ls.l.post(ls.resume)
	}()
}

func (ls *loopSession) resume() {
	if ls.closed {
		return // the warming goroutine still posts; nothing is left to resume
	}
	ls.paused = false
	ls.s.masking.mayBlockOnce = true // now cached, unless it cannot be
	ls.interest(ls.client, unix.EPOLLIN|unix.EPOLLRDHUP, !ls.c2s.blocked && !ls.clientHeld())
	ls.pumpBuffered(&ls.c2s, ls.clientH, ls.sfd)
}

// onEvent handles readiness of one of the session's descriptors.
func (ls *loopSession) onEvent(e *endpoint, ev uint32) {
	in, out, src, dst := &ls.c2s, &ls.s2c, ls.cfd, ls.sfd
	inH := ls.clientH
	if !e.isClient {
		in, out, src, dst = &ls.s2c, &ls.c2s, ls.sfd, ls.cfd
		inH = ls.serverH
	}
	if ev&unix.EPOLLOUT != 0 {
		ls.flush(out, src)
	}
	if ls.clientHeld() && e.isClient && ev&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		// Reported even when not asked for, and level-triggered: a client
		// gone while its session waits would wake the loop again and again.
		ls.end(true, io.EOF)
		return
	}
	if !ls.closed && !in.blocked && !(e.isClient && ls.clientHeld()) && ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		ls.read(in, inH, src, dst)
	}
}

// read reads once from src, relays the complete messages, and writes the
// result to dst.
func (ls *loopSession) read(d *direction, h handler, src, dst int) {
	p := d.p
	ls.l.bufs.lend(p)
	n, errno := rawRead(src, p.buf[p.w:])
	switch {
	case errno == syscall.EAGAIN:
		ls.settle(d)
		return
	case errno != 0:
		ls.end(d == &ls.c2s, errno)
		return
	case n == 0:
		ls.end(d == &ls.c2s, io.EOF)
		return
	}
	p.w += n
	if p.bytes != nil {
		p.bytes.Add(float64(n))
	}
	ls.relay(d, h, dst)
}

// flush writes d's pending output to dst. When the socket is full it
// pauses reading d's source and waits for dst to become writable.
func (ls *loopSession) flush(d *direction, dst int) {
	p := d.p
	for d.sent < len(p.out) {
		n, errno := rawWrite(dst, p.out[d.sent:])
		if errno == syscall.EAGAIN {
			ls.setBlocked(d, true)
			return
		}
		if errno != 0 && d == &ls.c2s && !ls.serverGone {
			ls.serverWentAway()
			return
		}
		if errno != 0 {
			ls.end(d != &ls.c2s, errno)
			return
		}
		d.sent += n
	}
	d.sent = 0
	p.out = p.out[:0]
	ls.l.bufs.settleOut(p)
	if d.blocked {
		ls.setBlocked(d, false)
		h := ls.clientH
		if d == &ls.s2c {
			h = ls.serverH
		}
		ls.pumpBuffered(d, h, dst)
	}
}

// serverWentAway handles a failed send to the server. A server that ends
// a session (pg_terminate_backend, a shutdown) sends its FATAL and closes,
// and what the client sent meanwhile, a COPY's data say, can no longer
// reach it; but the FATAL may still wait unread in the server's socket,
// when the client's event came first in the loop's batch. So the session
// does not end here, with the proxy's own 08006: the client's bytes are
// dropped and it is no longer read, and the server's socket, readable or
// in error from now on, ends the session once its last words are relayed.
func (ls *loopSession) serverWentAway() {
	ls.serverGone = true
	ls.c2s.sent, ls.c2s.p.out, ls.c2s.blocked = 0, ls.c2s.p.out[:0], false
	ls.interest(ls.server, unix.EPOLLOUT, false)
	ls.interest(ls.client, unix.EPOLLIN|unix.EPOLLRDHUP, false)
}

// clientHeld reports whether the client is not to be read for now: its
// session waits for blocking work, or for the server's last words.
func (ls *loopSession) clientHeld() bool { return ls.paused || ls.serverGone }

// setBlocked pauses or resumes reading d's source while its output waits.
func (ls *loopSession) setBlocked(d *direction, blocked bool) {
	d.blocked = blocked
	srcEnd, dstEnd := ls.client, ls.server
	if d == &ls.s2c {
		srcEnd, dstEnd = ls.server, ls.client
	}
	ls.interest(srcEnd, unix.EPOLLIN|unix.EPOLLRDHUP, !blocked && !(srcEnd == ls.client && ls.clientHeld()))
	ls.interest(dstEnd, unix.EPOLLOUT, blocked)
}

// interest turns bits of an endpoint's epoll interest on or off.
func (ls *loopSession) interest(e *endpoint, bits uint32, on bool) {
	want := e.events &^ bits
	if on {
		want |= bits
	}
	if want == e.events {
		return
	}
	e.events = want
	fd := ls.sfd
	if e.isClient {
		fd = ls.cfd
	}
	ev := unix.EpollEvent{Events: want, Fd: int32(fd)}
	unix.EpollCtl(ls.l.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// end closes the session: it tells the client why when it should know,
// closes both descriptors and releases the session's goroutine.
func (ls *loopSession) end(fromClient bool, err error) {
	if ls.closed {
		return
	}
	ls.drainClient = !fromClient
	if msg := ls.s.endMessage(fromClient, err); msg != nil {
		ls.writeClientNow(msg)
	}
	ls.closeNow()
}

// writeClientNow queues b after the client's pending output and tries once
// to write it all; used for the last words of a session.
func (ls *loopSession) writeClientNow(b []byte) {
	if ls.closed {
		return
	}
	ls.s2c.p.out = append(ls.s2c.p.out, b...)
	ls.flush(&ls.s2c, ls.cfd)
}

// terminate sends the client msg and the server a Terminate, then closes.
func (ls *loopSession) terminate(msg []byte) {
	ls.drainClient = true
	ls.writeClientNow(msg)
	if !ls.closed {
		rawWrite(ls.sfd, []byte{'X', 0, 0, 0, 4})
	}
	ls.closeNow()
}

// closeNow closes both descriptors and wakes the session's goroutine.
func (ls *loopSession) closeNow() {
	if ls.closed {
		return
	}
	ls.closed = true
	ls.l.ends[ls.cfd], ls.l.ends[ls.sfd] = nil, nil
	ls.closeClient() // after writing what is still queued for it (linger_linux.go)
	unix.Close(ls.sfd)
	close(ls.done)
}

// loops is the set of event loops of a process, created on first use.
type loops struct {
	once sync.Once
	all  []*loop
	next uint32
	mu   sync.Mutex
}

// pick returns a loop for a new session (round robin), or nil when event
// loops are not available.
func (ls *loops) pick() *loop {
	ls.once.Do(func() {
		n := max(1, runtime.GOMAXPROCS(0)/2)
		for i := 0; i < n; i++ {
			l, err := newLoop()
			if err != nil {
				return
			}
			ls.all = append(ls.all, l)
		}
	})
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if len(ls.all) == 0 {
		return nil
	}
	ls.next++
	return ls.all[int(ls.next)%len(ls.all)]
}

// stop ends the loops once no session uses them, and waits for them.
func (ls *loops) stop() {
	ls.mu.Lock()
	all := ls.all
	ls.all = nil
	ls.mu.Unlock()
	for _, l := range all {
		l.post(func() { l.quit = true })
		<-l.stopped
	}
}
