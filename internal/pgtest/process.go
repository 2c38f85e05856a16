package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a started child process whose exit is watched in the
// background, so callers can both wait for it with a deadline and notice
// when it dies early.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit error, valid once done is closed
}

// StartProcess starts cmd and watches for its exit.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns how the process exited; call it only after Done is closed.
func (p *Process) Err() error { return p.err }

// Stop sends sig, waits up to timeout for the process to exit, and kills it
// if it has not. It returns an error only when the process had to be
// killed. Stopping an exited process does nothing.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal pid %d: %w", p.Pid(), err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("pid %d did not exit within %s of %v; killed", p.Pid(), timeout, sig)
}
