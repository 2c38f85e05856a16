// Package pgtest runs a throwaway PostgreSQL cluster for tests and
// benchmarks. A cluster lives in a fresh temporary directory, listens on
// 127.0.0.1 only, trusts every local connection unless Options.HBA says
// otherwise, and is removed again by Stop.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// startDeadline bounds how long Start and Restart wait for the server to
// accept connections.
const startDeadline = 60 * time.Second

// stopDeadline bounds how long Stop waits for a fast shutdown before it
// kills the server.
const stopDeadline = 30 * time.Second

// Options tunes a cluster. The zero value is a usable default.
type Options struct {
	// HBA holds extra pg_hba.conf lines placed before the default trust
	// lines, e.g. "host all scram_user 127.0.0.1/32 scram-sha-256".
	HBA []string
	// Settings holds extra postgresql.conf settings; they override the
	// defaults. Values are written as given, so quote strings yourself
	// where PostgreSQL needs it.
	Settings map[string]string
	// Port is the TCP port to listen on; 0 picks a free port on 127.0.0.1.
	Port int
}

// Cluster is a running throwaway PostgreSQL server.
type Cluster struct {
	Dir     string // temporary directory holding everything below
	DataDir string // PGDATA
	BinDir  string // directory holding initdb and postgres
	Host    string // always 127.0.0.1
	Port    int
	LogFile string // server log (stderr of postgres)

	cred   *syscall.Credential // nil when running as the current user
	server *Process
}

// Start creates a new cluster in a fresh temporary directory and waits until
// it accepts connections. On failure nothing is left behind.
func Start(opts Options) (*Cluster, error) {
	c, err := create(opts)
	if err != nil {
		return nil, err
	}
	if err := c.start(); err != nil {
		_ = os.RemoveAll(c.Dir)
		return nil, err
	}
	return c, nil
}

// create finds the binaries, makes the directory and runs initdb.
func create(opts Options) (*Cluster, error) {
	bin, err := FindBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := ServerCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "pgveil-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: create temp dir: %w", err)
	}
	c := &Cluster{
		Dir: dir, DataDir: filepath.Join(dir, "data"), BinDir: bin,
		Host: "127.0.0.1", Port: opts.Port,
		LogFile: filepath.Join(dir, "postgres.log"), cred: cred,
	}
	if err := c.initialise(opts); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// initialise runs initdb and writes the configuration files.
func (c *Cluster) initialise(opts Options) error {
	if err := Chown(c.Dir, c.cred); err != nil {
		return err
	}
	if c.Port == 0 {
		port, err := FreePort()
		if err != nil {
			return err
		}
		c.Port = port
	}
	if err := c.initdb(); err != nil {
		return err
	}
	if err := c.writeHBA(opts.HBA); err != nil {
		return err
	}
	return c.writeSettings(opts.Settings)
}

// initdb creates the data directory with trust authentication.
func (c *Cluster) initdb() error {
	cmd := exec.Command(filepath.Join(c.BinDir, "initdb"),
		"-D", c.DataDir, "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	cmd.Dir = c.Dir
	cmd.Env = serverEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return nil
}

// Addr returns the server's TCP address, "127.0.0.1:PORT".
func (c *Cluster) Addr() string {
	return net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
}

// DSN returns a postgres URL for the given role and database with
// sslmode=disable. An empty password is left out.
func (c *Cluster) DSN(user, password, db string) string {
	u := url.URL{Scheme: "postgres", Host: c.Addr(), Path: "/" + db,
		RawQuery: "sslmode=disable"}
	if password == "" {
		u.User = url.User(user)
	} else {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// Exec runs sql as the superuser postgres in database postgres over a new
// connection.
func (c *Cluster) Exec(ctx context.Context, sql string, args ...any) error {
	conn, err := pgx.Connect(ctx, c.DSN("postgres", "", "postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: connect: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		return fmt.Errorf("pgtest: exec: %w", err)
	}
	return nil
}

// Stop shuts the server down (fast mode) and removes the temporary
// directory. It is safe to call more than once.
func (c *Cluster) Stop() error {
	err := c.stopServer()
	if rmErr := os.RemoveAll(c.Dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("pgtest: remove %s: %w", c.Dir, rmErr))
	}
	return err
}

// Restart stops the server (fast mode) and starts it again on the same port
// and data directory, waiting until it accepts connections.
func (c *Cluster) Restart() error {
	if err := c.stopServer(); err != nil {
		return err
	}
	return c.start()
}

// stopServer asks the postmaster for a fast shutdown and waits for it.
func (c *Cluster) stopServer() error {
	if c.server == nil {
		return nil
	}
	err := c.server.Stop(syscall.SIGINT, stopDeadline)
	c.server = nil
	if err != nil {
		return fmt.Errorf("pgtest: stop: %w", err)
	}
	return nil
}

// serverEnv is the environment for initdb and postgres: the current one
// without PG* variables that could redirect them.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if len(kv) > 2 && kv[:2] == "PG" {
			continue
		}
		env = append(env, kv)
	}
	return env
}
