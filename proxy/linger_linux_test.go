package proxy

import (
	"bytes"
	"io"
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
	go lingerWrite(fds[0], last, 10*time.Second)
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
