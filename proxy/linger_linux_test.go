package proxy

import (
	"bytes"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLingerWriteDeliversQueuedOutput: what a session still had queued for
// a client whose socket was full reaches it once it reads, then EOF.
func TestLingerWriteDeliversQueuedOutput(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetNonblock(fds[0], true)
	var filled int
	chunk := bytes.Repeat([]byte{'x'}, 4096)
	for {
		n, err := unix.Write(fds[0], chunk)
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		filled += n
	}
	last := []byte("last words: FATAL 08006")
	go linger(fds[0], last, false)
	peer := os.NewFile(uintptr(fds[1]), "peer")
	defer peer.Close()
	got, err := io.ReadAll(peer)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != filled+len(last) || !bytes.HasSuffix(got, last) {
		t.Fatalf("client read %d bytes ending %q, want %d ending %q", len(got), got[max(0, len(got)-30):], filled+len(last), last)
	}
}

// TestLingerDrainsClientInput: a client still sending when its session
// ends from the server's side reads the last words and then a clean EOF.
// Closed with its input unread, the same socket resets the client instead,
// which is what the drain is for (the control half of the test).
func TestLingerDrainsClientInput(t *testing.T) {
	for _, drain := range []bool{false, true} {
		client, fd := tcpPair(t)
		unsent := make([]byte, 64<<10)
		if _, err := client.Write(unsent); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for n, _ := unix.IoctlGetInt(fd, unix.SIOCINQ); n < len(unsent); n, _ = unix.IoctlGetInt(fd, unix.SIOCINQ) {
			if time.Now().After(deadline) {
				t.Fatalf("the proxy's side holds %d of the client's %d bytes", n, len(unsent))
			}
			time.Sleep(time.Millisecond)
		}
		last := []byte("FATAL 57P01")
		go linger(fd, last, drain)
		client.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(client)
		client.Close()
		switch {
		case drain && (err != nil || !bytes.Equal(got, last)):
			t.Errorf("with the drain the client read %q, %v; want %q and EOF", got, err, last)
		case !drain && err == nil:
			t.Errorf("closed with input unread, the client read %q and EOF: the control case no longer resets", got)
		}
	}
}

// tcpPair returns a client connection and the non-blocking descriptor of
// its accepted end, taken out of the runtime as an event loop takes it.
func tcpPair(t *testing.T) (net.Conn, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := detachFD(srv)
	if err != nil {
		t.Fatal(err)
	}
	return client, fd
}
