package proxy

import (
	"fmt"
	"io"
	"net"

	"github.com/prometheus/client_golang/prometheus"
)

// Buffer sizes. A pump's read buffer starts at startBufSize for the
// startup phase, is readBufSize while relaying, and grows only to hold one
// whole message that must be inspected; it shrinks back once empty. (On an
// event loop a pump borrows the loop's buffers instead: loopbuf_linux.go.)
const (
	startBufSize = 4 << 10
	readBufSize  = 32 << 10
	flushAtBytes = 256 << 10 // an output buffer larger than 4x this is dropped after use
)

// handler decides, per message, what a pump does with it. Both methods run
// on the pump's goroutine only.
type handler interface {
	// whole reports whether a message of type typ must be fetched whole and
	// passed to handle. Messages it returns false for are forwarded as bytes
	// without being buffered whole or decoded.
	whole(typ byte) bool
	// handle appends what to forward for msg (the whole message, header
	// included) to out. msg is borrowed: it is valid only until handle
	// returns. An error ends the session.
	handle(out, msg []byte) ([]byte, error)
}

// A pump moves protocol messages one way. It reads into one reused buffer,
// parses only the 5-byte header of each message, and forwards the bytes of
// messages nobody needs to see without decoding them (as PgBouncer's sbuf
// does). Everything forwarded from one read goes out in one write.
type pump struct {
	src io.Reader
	dst io.Writer
	max int64 // largest message accepted (max_message_size)

	buf  []byte // read buffer; buf[r:w] is unconsumed
	r, w int
	skip int    // bytes of the current message still to forward unseen
	out  []byte // bytes to write to dst after this batch

	bytes prometheus.Counter // counts bytes read; may be nil
}

func newPump(src io.Reader, dst io.Writer, max int64) *pump {
	return &pump{src: src, dst: dst, max: max, buf: make([]byte, startBufSize)}
}

// grow gives the pump a read buffer of readBufSize for relaying.
func (p *pump) grow() {
	if len(p.buf) >= readBufSize {
		return
	}
	buf := make([]byte, readBufSize)
	p.w = copy(buf, p.buf[p.r:p.w])
	p.r, p.buf = 0, buf
}

// next reads one whole message for the startup and authentication phases.
// The returned slice aliases the pump's buffer: it is valid until the next
// call to next or run.
func (p *pump) next() ([]byte, error) {
	for {
		if p.w-p.r >= headerLen {
			n, err := messageLen(p.buf[p.r:p.w], p.max)
			if err != nil {
				return nil, err
			}
			if p.w-p.r >= n {
				msg := p.buf[p.r : p.r+n : p.r+n]
				p.r += n
				return msg, nil
			}
			p.makeRoom(n)
		} else {
			p.makeRoom(headerLen)
		}
		if err := p.fill(); err != nil {
			return nil, err
		}
	}
}

// fill reads once into the free end of the buffer.
func (p *pump) fill() error {
	n, err := p.src.Read(p.buf[p.w:])
	p.w += n
	if n > 0 {
		if p.bytes != nil {
			p.bytes.Add(float64(n))
		}
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// run relays messages until src or dst fails. It returns the read or
// write error, or the error a handler returned.
func (p *pump) run(h handler) error {
	for {
		need, err := p.process(h)
		if err != nil {
			return err
		}
		if err := p.flush(); err != nil {
			return err
		}
		p.makeRoom(need)
		if err := p.fill(); err != nil {
			return err
		}
	}
}

// process handles the complete messages in buf[r:w] and forwards the bytes
// of streamed ones. It returns how many bytes the next message needs to be
// whole in the buffer (0 when only its header is missing).
func (p *pump) process(h handler) (need int, err error) {
	for p.r < p.w {
		if p.skip > 0 {
			k := min(p.skip, p.w-p.r)
			p.out = append(p.out, p.buf[p.r:p.r+k]...)
			p.r += k
			p.skip -= k
			continue
		}
		if p.w-p.r < headerLen {
			return headerLen, nil
		}
		n, err := messageLen(p.buf[p.r:p.w], p.max)
		if err != nil {
			return 0, err
		}
		if !h.whole(p.buf[p.r]) {
			p.skip = n
			continue
		}
		if p.w-p.r < n {
			return n, nil
		}
		if p.out, err = h.handle(p.out, p.buf[p.r:p.r+n:p.r+n]); err != nil {
			return 0, err
		}
		p.r += n
	}
	return 0, nil
}

// flush writes what is pending in one write. An oversized output buffer
// is dropped afterwards.
func (p *pump) flush() error {
	if len(p.out) == 0 {
		return nil
	}
	_, err := p.dst.Write(p.out)
	if cap(p.out) > 4*flushAtBytes {
		p.out = nil
	} else {
		p.out = p.out[:0]
	}
	return err
}

// makeRoom makes room in buf toward need bytes from r, moving unconsumed
// bytes to the front, growing the buffer for one large message (callers
// fill and call again until the message is whole), and shrinking it back
// when it is empty. It always leaves free space to read into.
func (p *pump) makeRoom(need int) {
	if p.r == p.w {
		p.r, p.w = 0, 0
		if len(p.buf) > readBufSize {
			p.buf = make([]byte, readBufSize)
		}
	}
	need = max(need, headerLen)
	if p.r+need <= len(p.buf) && p.w < len(p.buf) {
		return
	}
	if need <= len(p.buf) {
		p.w = copy(p.buf, p.buf[p.r:p.w])
		p.r = 0
		return
	}
	// Grow toward need by doubling as the bytes arrive, never ahead of
	// them: a 5-byte header claiming max_message_size must not make the
	// proxy allocate that much (the soak's malformed senders did, 1 GiB each).
	bigger := make([]byte, min(need, max(2*len(p.buf), p.w-p.r+readBufSize)))
	p.w = copy(bigger, p.buf[p.r:p.w])
	p.r = 0
	p.buf = bigger
}

// writeAll writes b to a connection, reporting a short write as an error.
func writeAll(c net.Conn, b []byte) error {
	n, err := c.Write(b)
	if err == nil && n != len(b) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(b))
	}
	return err
}
