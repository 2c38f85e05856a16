package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
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
//
// Linux sends a child's parent-death signal (SysProcAttr.Pdeathsig) when
// the OS thread that forked it exits, not the process. Go ends threads
// whose goroutine exits while locked to them (pgveil's event loops do), so
// the child is forked from a goroutine that keeps its thread locked, and
// alive, until the child has exited.
func StartProcess(cmd *exec.Cmd) (*Process, error) {
	p := &Process{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the child
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
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
