//go:build linux

package proxy

import "unsafe"

// Buffers on an event loop. A session relayed by a loop holds no buffer
// while it is idle: a read goes into the loop's own read buffer, and only
// bytes left over in it (the start of a message the next read completes)
// move to a buffer of the session's, taken from the loop's free list and
// given back once the session's bytes are all relayed. Output is built in
// the loop's spare output buffer, and the session keeps it only while the
// socket is too full to take it all. A session's idle cost is then its
// structures alone (measured in the README), whatever it relayed before.
//
// Everything here runs on the loop's thread only.
type loopBufs struct {
	read     []byte   // the loop's read buffer, lent to one pump at a time
	free     [][]byte // session buffers given back, readBufSize each
	spareOut []byte   // an emptied output buffer, for the next pump that needs one
}

// maxFreeBufs bounds the free list: more are left to the collector.
const maxFreeBufs = 64

func newLoopBufs() loopBufs { return loopBufs{read: make([]byte, readBufSize)} }

// lend gives a pump that holds no bytes the loop's read buffer and, when
// it has none, the spare output buffer.
func (b *loopBufs) lend(p *pump) {
	if p.buf == nil {
		p.buf, p.r, p.w = b.read, 0, 0
	}
	if p.out == nil {
		p.out, b.spareOut = b.spareOut, nil
	}
}

// settle takes back what a pump borrowed once it has relayed what it
// could: the read buffer (moving a leftover to a buffer of the pump's own)
// and an own buffer it no longer needs.
func (b *loopBufs) settle(p *pump) {
	if p.r == p.w {
		if len(p.buf) == readBufSize && !b.isRead(p.buf) && len(b.free) < maxFreeBufs {
			b.free = append(b.free, p.buf)
		}
		p.buf, p.r, p.w = nil, 0, 0
		return
	}
	if b.isRead(p.buf) {
		own := b.take()
		p.w = copy(own, p.buf[p.r:p.w])
		p.r, p.buf = 0, own
	}
}

// settleOut takes back a pump's output buffer once all of it was written.
func (b *loopBufs) settleOut(p *pump) {
	if len(p.out) != 0 {
		return // still to be written: the pump keeps it
	}
	if cap(p.out) <= 4*flushAtBytes && cap(p.out) > cap(b.spareOut) {
		b.spareOut = p.out[:0]
	}
	p.out = nil
}

// take returns a session buffer of readBufSize bytes.
func (b *loopBufs) take() []byte {
	if n := len(b.free); n > 0 {
		buf := b.free[n-1]
		b.free[n-1] = nil
		b.free = b.free[:n-1]
		return buf
	}
	return make([]byte, readBufSize)
}

// isRead reports whether buf is the loop's read buffer.
func (b *loopBufs) isRead(buf []byte) bool {
	return len(buf) > 0 && unsafe.SliceData(buf) == unsafe.SliceData(b.read)
}
