// Package bouncer runs a real PgBouncer for tests and the benchmark: it
// writes pgbouncer.ini and the auth file into a private directory, starts
// the binary as a child process (as the postgres OS user when we are root,
// since PgBouncer refuses to run as root) and waits until it listens.
//
// Config.Ini is the whole configuration, so a test can put the exact text
// it ran into a failure message, and the README's snippets are the ones the
// tests run.
package bouncer

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// readyTimeout bounds how long PgBouncer may take to listen.
const readyTimeout = 20 * time.Second

// stopTimeout bounds how long PgBouncer may take to exit after SIGTERM.
const stopTimeout = 10 * time.Second

// Pool modes.
const (
	Session     = "session"
	Transaction = "transaction"
)

// Database is one line of [databases]: the name clients ask for and the
// server PgBouncer opens connections to for it.
type Database struct {
	Name   string // the name clients connect to; "*" for every other
	Addr   string // host:port of the server
	DBName string // database on the server; "" for Name (or the client's, for "*")
	User   string // forced server login role; "" logs in as the client's role
}

// line is the [databases] entry.
func (d Database) line() string {
	host, port, _ := net.SplitHostPort(d.Addr)
	s := fmt.Sprintf("%s = host=%s port=%s", d.Name, host, port)
	if d.DBName != "" {
		s += " dbname=" + d.DBName
	}
	if d.User != "" {
		s += " user=" + d.User
	}
	return s
}

// Config describes one PgBouncer.
type Config struct {
	Bin       string // the binary; "" for Find's choice
	Listen    string // host:port to listen on
	PoolMode  string // Session (the default) or Transaction
	Databases []Database
	// Users are the roles in the auth file. Even auth_type trust wants
	// a client's name listed there.
	Users []User
	// HBA, when set, are the lines of PgBouncer's auth_hba_file
	// (auth_type = hba), e.g. "host all all 127.0.0.1/32 trust"; without
	// it every client is trusted (auth_type = trust).
	HBA []string
	// MaxClients and PoolSize are max_client_conn and default_pool_size;
	// 0 for 1000 and 200. In session mode every client holds a server
	// connection of the pool while it is logged in and has sent a query.
	MaxClients, PoolSize int
}

// User is one line of the auth file. PgBouncer checks a client's password
// against it and logs into the server with it; "" for none.
type User struct{ Name, Password string }

// Ini is the pgbouncer.ini text for c, with its auth files in dir.
func (c Config) Ini(dir string) string {
	host, port, _ := net.SplitHostPort(c.Listen)
	lines := []string{"[databases]"}
	for _, d := range c.Databases {
		lines = append(lines, d.line())
	}
	lines = append(lines,
		"[pgbouncer]",
		"listen_addr = "+host,
		"listen_port = "+port,
		"unix_socket_dir =",
		"auth_file = "+filepath.Join(dir, "userlist.txt"),
		"pool_mode = "+or(c.PoolMode, Session),
		"max_client_conn = "+strconv.Itoa(orInt(c.MaxClients, 1000)),
		"default_pool_size = "+strconv.Itoa(orInt(c.PoolSize, 200)),
		// JDBC and pgbench send it; PgBouncer refuses unknown startup
		// parameters unless told to ignore them.
		"ignore_startup_parameters = extra_float_digits",
	)
	if len(c.HBA) == 0 {
		lines = append(lines, "auth_type = trust")
	} else {
		lines = append(lines, "auth_type = hba", "auth_hba_file = "+filepath.Join(dir, "hba.conf"))
	}
	return strings.Join(lines, "\n") + "\n"
}

// Userlist is the auth file: one `"user" "password"` line per user.
func (c Config) Userlist() string {
	var b strings.Builder
	for _, u := range c.Users {
		fmt.Fprintf(&b, "%s %s\n", quote(u.Name), quote(u.Password))
	}
	return b.String()
}

// quote double-quotes s the way PgBouncer's auth file wants.
func quote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// files are the files Start writes into dir, by name.
func (c Config) files(dir string) map[string]string {
	return map[string]string{"pgbouncer.ini": c.Ini(dir), "userlist.txt": c.Userlist(),
		"hba.conf": strings.Join(c.HBA, "\n") + "\n"}
}

// Find returns the pgbouncer binary: path when set, else the one on PATH,
// else /usr/sbin/pgbouncer (Debian's package puts it there).
func Find(path string) (string, error) {
	if path != "" {
		return path, nil
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer", nil
	}
	return "", errors.New("pgbouncer not found on PATH or in /usr/sbin; install it with: apt-get install -y pgbouncer")
}

// Bouncer is a running PgBouncer.
type Bouncer struct {
	Addr string // where it listens
	Dir  string // holds pgbouncer.ini, userlist.txt and pgbouncer.log
	Ini  string // the configuration it runs with
	proc *pgtest.Process
}

// Start writes c's files into a new directory under parent ("" for the
// system's temporary directory; as root, the postgres OS user must be able
// to enter it, which a test's t.TempDir() does not let it), starts
// PgBouncer and waits until it accepts connections. It does not wait for the servers: PgBouncer opens
// server connections when clients arrive.
func Start(c Config, parent string) (*Bouncer, error) {
	bin, err := Find(c.Bin)
	if err != nil {
		return nil, err
	}
	cred, err := pgtest.ServerCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(parent, "pgbouncer-")
	if err != nil {
		return nil, err
	}
	b := &Bouncer{Addr: c.Listen, Dir: dir, Ini: c.Ini(dir)}
	if err := b.start(bin, c, cred); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return b, nil
}

// start writes the files, starts the process and waits until it listens.
func (b *Bouncer) start(bin string, c Config, cred *syscall.Credential) error {
	for name, text := range c.files(b.Dir) {
		if err := writeOwned(filepath.Join(b.Dir, name), text, cred); err != nil {
			return err
		}
	}
	if err := pgtest.Chown(b.Dir, cred); err != nil {
		return err
	}
	logf, err := os.Create(b.LogPath())
	if err != nil {
		return err
	}
	defer func() { _ = logf.Close() }()
	cmd := exec.Command(bin, filepath.Join(b.Dir, "pgbouncer.ini"))
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a terminal's Ctrl-C reaches only us (who
	// then stop it); the parent-death signal ends it should we die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM, Credential: cred}
	if b.proc, err = pgtest.StartProcess(cmd); err != nil {
		return fmt.Errorf("start pgbouncer: %w", err)
	}
	if err := waitListening(b.Addr, b.proc, readyTimeout); err != nil {
		_ = b.proc.Stop(syscall.SIGKILL, stopTimeout)
		return fmt.Errorf("pgbouncer on %s: %w\n--- %s (tail) ---\n%s", b.Addr, err, b.LogPath(), pgtest.Tail(b.LogPath(), 4096))
	}
	return nil
}

// writeOwned writes a private file owned by cred's user (or by us).
func writeOwned(path, text string, cred *syscall.Credential) error {
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return err
	}
	return pgtest.Chown(path, cred)
}

// waitListening polls until addr accepts a TCP connection, p exits, or
// timeout passes. PgBouncer opens its listening socket only once it has
// read its configuration, so accepting means ready.
func waitListening(addr string, p *pgtest.Process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening after %s: %w", timeout, err)
		}
		select {
		case <-p.Done():
			return fmt.Errorf("exited before listening: %w", errors.Join(p.Err(), err))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Pid is the PgBouncer process id.
func (b *Bouncer) Pid() int { return b.proc.Pid() }

// LogPath is PgBouncer's log file.
func (b *Bouncer) LogPath() string { return filepath.Join(b.Dir, "pgbouncer.log") }

// Log is the end of PgBouncer's log, for failure messages.
func (b *Bouncer) Log() string { return pgtest.Tail(b.LogPath(), 8192) }

// Stop ends PgBouncer (SIGTERM, then SIGKILL after a while) and removes
// its directory.
func (b *Bouncer) Stop() error {
	err := b.proc.Stop(syscall.SIGTERM, stopTimeout)
	return errors.Join(err, os.RemoveAll(b.Dir))
}
