//go:build !linux

package proxy

// Without epoll every session uses the goroutine driver.

type loop struct{}

func (*loop) post(func()) {}

type loopSession struct{ l *loop }

func (*loopSession) writeClientNow([]byte) {}
func (*loopSession) terminate([]byte)      {}
func (*loopSession) closeNow()             {}

func (s *session) relayOnLoop(*loop) bool { return false }

type loops struct{}

func (*loops) pick() *loop { return nil }
func (*loops) stop()       {}
