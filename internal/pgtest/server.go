package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pollInterval is the pause between connection attempts while waiting for
// the server to come up.
const pollInterval = 50 * time.Millisecond

// start launches postgres and waits until it accepts connections. On
// failure the error carries the tail of the server log.
func (c *Cluster) start() error {
	p, err := c.launch()
	if err != nil {
		return err
	}
	if err := WaitReady(c.DSN("postgres", "", "postgres"), p, startDeadline); err != nil {
		_ = p.Stop(syscall.SIGQUIT, stopDeadline)
		return fmt.Errorf("pgtest: start postgres on %s: %w\n--- %s (tail) ---\n%s",
			c.Addr(), err, c.LogFile, Tail(c.LogFile, 4096))
	}
	c.server = p
	return nil
}

// launch starts the postmaster with its output appended to the log file.
// It gets its own process group so a terminal Ctrl-C reaches only the
// caller, which then shuts it down; if the caller dies first, the parent
// death signal makes postgres do a fast shutdown on its own.
func (c *Cluster) launch() (*Process, error) {
	logf, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pgtest: open log: %w", err)
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(filepath.Join(c.BinDir, "postgres"), "-D", c.DataDir)
	cmd.Dir = c.Dir
	cmd.Env = serverEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: c.cred, Setpgid: true, Pdeathsig: syscall.SIGINT,
	}
	p, err := StartProcess(cmd)
	if err != nil {
		return nil, fmt.Errorf("pgtest: start postgres: %w", err)
	}
	return p, nil
}

// WaitReady polls until a connection with dsn succeeds and answers a query,
// the process p (if not nil) exits, or timeout passes.
func WaitReady(dsn string, p *Process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var exited <-chan struct{}
	if p != nil {
		exited = p.Done()
	}
	for {
		err := ping(dsn)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("process exited before accepting connections: %w",
				errors.Join(p.Err(), err))
		case <-time.After(pollInterval):
		}
	}
}

// ping connects once with dsn and runs SELECT 1, in the simple protocol:
// pgx's default, a named prepared statement, fails through PgBouncer in
// transaction mode (the statement is prepared on one server connection
// and may run on another).
func ping(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.Background()) }()
	var one int
	return conn.QueryRow(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol).Scan(&one)
}
