package proxy_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/proxy"
)

func TestPasswordAuthentication(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	for _, user := range []string{scramUser, md5User} {
		c, err := pgx.Connect(ctx, p.dsn(user, password))
		if err != nil {
			t.Fatalf("%s with the right password: %v", user, err)
		}
		var who string
		if err := c.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != user {
			t.Fatalf("current_user = %q, %v", who, err)
		}
		c.Close(ctx)

		_, err = pgx.Connect(ctx, p.dsn(user, "wrong"))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "28P01" || !strings.Contains(pgErr.Message, "password authentication failed") {
			t.Fatalf("%s with a wrong password: want the server's 28P01, got %v", user, err)
		}
	}
}

func TestUnreachableUpstream(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	p := startProxy(t, func(o *proxy.Options) { o.Upstream = dead })
	_, err := pgx.Connect(testCtx(t), p.dsn("postgres", ""))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "08001" || !strings.Contains(pgErr.Message, dead) {
		t.Fatalf("want 08001 naming %s, got %v", dead, err)
	}
}

// rawStartup opens a raw socket to the proxy and completes a trust login.
func rawStartup(t *testing.T, addr string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	return rawStartupWith(t, addr, map[string]string{"user": "postgres", "database": "postgres"})
}

// rawStartupWith is rawStartup with the given startup parameters.
func rawStartupWith(t *testing.T, addr string, params map[string]string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fe := pgproto3.NewFrontend(conn, conn)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: params})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("startup: %v", err)
		}
		if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
			return conn, fe
		}
	}
}

// expectFatal reads until a FATAL ErrorResponse and then the end of the connection.
func expectFatal(t *testing.T, fe *pgproto3.Frontend, code string) {
	t.Helper()
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("connection ended without a FATAL %s: %v", code, err)
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			if e.Severity != "FATAL" || e.Code != code {
				t.Fatalf("want FATAL %s, got %s %s %s", code, e.Severity, e.Code, e.Message)
			}
			if _, err := fe.Receive(); err == nil {
				t.Fatal("connection still open after FATAL")
			}
			return
		}
	}
}

func TestMalformedMessages(t *testing.T) {
	p := startProxy(t, func(o *proxy.Options) { o.MaxMessageSize = 1 << 20 })
	other := p.connect(t, "postgres")
	cases := map[string][]byte{
		"length below 4": {'Q', 0, 0, 0, 2},
		"over the limit": {'Q', 0, 0x20, 0, 0},
	}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			conn, fe := rawStartup(t, p.addr)
			conn.Write(msg)
			expectFatal(t, fe, "08P01")
		})
	}
	t.Run("garbage startup packet", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		conn.Write([]byte{0, 0, 0, 8, 0, 9, 0, 0})
		fe := pgproto3.NewFrontend(conn, conn)
		expectFatal(t, fe, "0A000")
	})
	t.Run("truncated message then hang-up", func(t *testing.T) {
		conn, _ := rawStartup(t, p.addr)
		conn.Write([]byte{'Q', 0, 0, 0, 100, 'S', 'E'})
		conn.Close()
	})
	// Every other client keeps working.
	if err := other.Ping(testCtx(t)); err != nil {
		t.Fatalf("other client broken: %v", err)
	}
	eventually(t, "broken sessions to end", func() bool { return p.srv.Sessions() == 1 })
}

func TestUpstreamRestart(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	c := p.connect(t, "postgres")
	if err := db.Restart(); err != nil {
		t.Fatal(err)
	}
	// The old session's server is gone: the client gets an error, not a hang.
	err := c.Ping(ctx)
	if err == nil {
		t.Fatal("ping on a connection whose server restarted succeeded")
	}
	eventually(t, "the dead session to end", func() bool { return p.srv.Sessions() == 0 })
	c2 := p.connect(t, "postgres")
	if err := c2.Ping(ctx); err != nil {
		t.Fatalf("new connection after restart: %v", err)
	}
}

// TestUpstreamDropsConnection: the client's key carries the server's
// process id, so pg_terminate_backend of the id the driver reports ends
// that very session.
func TestUpstreamDropsConnection(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	c := p.connect(t, "postgres")
	admin := p.connect(t, "postgres")
	var serverPID uint32
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&serverPID); err != nil {
		t.Fatal(err)
	}
	if pid := c.PgConn().PID(); pid != serverPID {
		t.Fatalf("BackendKeyData has process id %d, the server's is %d", pid, serverPID)
	}
	var terminated bool
	if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1)", int(c.PgConn().PID())).Scan(&terminated); err != nil || !terminated {
		t.Fatalf("pg_terminate_backend(the driver's pid) = %v, %v", terminated, err)
	}
	var pgErr *pgconn.PgError
	if _, err := c.Exec(ctx, "SELECT 1"); err == nil || (errors.As(err, &pgErr) && pgErr.Severity != "FATAL") {
		t.Fatalf("want an error after the backend was terminated, got %v", err)
	}
}

func TestGracefulShutdown(t *testing.T) {
	p := startProxy(t, func(o *proxy.Options) { o.ShutdownTimeout = 20 * time.Second })
	ctx := testCtx(t)
	idle := p.connect(t, "postgres")
	busy := p.connect(t, "postgres")
	result := make(chan error, 1)
	go func() {
		var n int
		err := busy.QueryRow(ctx, "SELECT 5 FROM pg_sleep(1)").Scan(&n)
		if err == nil && n != 5 {
			err = errors.New("wrong result")
		}
		result <- err
	}()
	admin := p.connect(t, "postgres")
	eventually(t, "the busy query to start", func() bool {
		var n int
		admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT 5 FROM pg_sleep%' AND state = 'active'").Scan(&n)
		return n == 1
	})
	shut := make(chan error, 1)
	go func() { shut <- p.srv.Shutdown(ctx) }()
	if err := <-result; err != nil {
		t.Fatalf("running query did not finish during shutdown: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := idle.Ping(ctx); err == nil {
		t.Fatal("idle session survived shutdown")
	}
	if _, err := pgx.Connect(ctx, p.dsn("postgres", "")); err == nil {
		t.Fatal("proxy accepted a connection after shutdown")
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	p := startProxy(t, nil)
	ctx := testCtx(t)
	p.connect(t, "postgres").Close(ctx) // starts the event loops
	eventually(t, "the first session to end", func() bool { return p.srv.Sessions() == 0 })
	before := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		c, err := pgx.Connect(ctx, p.dsn("postgres", ""))
		if err != nil {
			t.Fatal(err)
		}
		c.Exec(ctx, "SELECT 1")
		c.Close(ctx)
	}
	eventually(t, "sessions and their goroutines to end", func() bool {
		return p.srv.Sessions() == 0 && runtime.NumGoroutine() <= before
	})
}

func TestPsql(t *testing.T) {
	p := startProxy(t, nil)
	host, port, _ := net.SplitHostPort(p.addr)
	cmd := exec.Command("psql", "-h", host, "-p", port, "-U", "postgres", "-d", "postgres", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-c", "SELECT name FROM items WHERE id = 7",
		"-c", `\copy (SELECT id FROM items WHERE id <= 3 ORDER BY id) TO STDOUT`)
	cmd.Env = append(cmd.Environ(), "PGCONNECT_TIMEOUT=10")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if got := string(out); got != "item 7\n1\n2\n3\n" {
		t.Fatalf("psql output %q", got)
	}
}

// selfSignedTLS makes a certificate for 127.0.0.1 / localhost.
func selfSignedTLS(t *testing.T) *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func TestClientTLSAndChannelBinding(t *testing.T) {
	p := startProxy(t, func(o *proxy.Options) { o.ClientTLS = selfSignedTLS(t) })
	ctx := testCtx(t)
	dsn := strings.Replace(p.dsn(scramUser, password), "sslmode=disable", "sslmode=require", 1)
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("SCRAM over TLS through the proxy: %v", err)
	}
	c.Close(ctx)
	// A client that requires channel binding gets a clear error: the proxy
	// does not offer SCRAM-SHA-256-PLUS.
	host, port, _ := net.SplitHostPort(p.addr)
	cmd := exec.Command("psql", "host="+host+" port="+port+" user="+scramUser+" dbname=postgres sslmode=require channel_binding=require", "-X", "-c", "SELECT 1")
	cmd.Env = append(cmd.Environ(), "PGPASSWORD="+password)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "channel binding") {
		t.Fatalf("psql with channel_binding=require: want a channel binding error, got %v: %s", err, out)
	}
	// Without TLS configured, SSLRequest is answered 'N'.
	plain := startProxy(t, nil)
	conn, err := net.Dial("tcp", plain.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write(binary.BigEndian.AppendUint32([]byte{0, 0, 0, 8}, 80877103))
	var answer [1]byte
	if _, err := io.ReadFull(conn, answer[:]); err != nil || answer[0] != 'N' {
		t.Fatalf("SSLRequest answer %q %v", answer[0], err)
	}
}

// TestCancelUnknownKeyIsIgnored: the process id is the server's and no
// secret, so a cancel request with the right process id and a wrong
// secret must not reach the server.
func TestCancelUnknownKeyIsIgnored(t *testing.T) {
	p := startProxy(t, nil)
	c, admin := p.connect(t, "postgres"), p.connect(t, "postgres")
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), "SELECT pg_sleep(1) -- wrong secret")
		done <- err
	}()
	eventually(t, "the sleeping query to start", func() bool {
		var n int
		admin.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%-- wrong secret' AND state = 'active'").Scan(&n)
		return n == 1
	})
	secret := bytes.Clone(c.PgConn().SecretKey())
	secret[0] ^= 1
	for _, pid := range []uint32{1, c.PgConn().PID()} {
		conn, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		pkt, _ := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}).Encode(nil)
		conn.Write(pkt)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("want the proxy to close the cancel connection, got %v", err)
		}
		conn.Close()
	}
	if err := <-done; err != nil {
		t.Fatalf("the query failed after cancel requests with a wrong secret: %v", err)
	}
}

// enableServerTLS turns SSL on in the test cluster with a fresh
// self-signed certificate and returns a pool that trusts it.
func enableServerTLS(t *testing.T) *x509.CertPool {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(db.DataDir, "server.crt"), filepath.Join(db.DataDir, "server.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cred, err := pgtest.ServerCredential()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{certFile, keyFile} {
		if err := pgtest.Chown(f, cred); err != nil {
			t.Fatal(err)
		}
	}
	ctx := testCtx(t)
	for _, sql := range []string{"ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"} {
		if err := db.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		db.Exec(context.Background(), "ALTER SYSTEM RESET ssl")
		db.Exec(context.Background(), "SELECT pg_reload_conf()")
	})
	pool := x509.NewCertPool()
	pool.AddCert(must(x509.ParseCertificate(der)))
	return pool
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestUpstreamTLS(t *testing.T) {
	roots := enableServerTLS(t)
	ctx := testCtx(t)
	for name, cfg := range map[string]*tls.Config{
		"require":     {InsecureSkipVerify: true},
		"verify-full": {RootCAs: roots, ServerName: "127.0.0.1"},
	} {
		t.Run(name, func(t *testing.T) {
			p := startProxy(t, func(o *proxy.Options) { o.UpstreamTLS, o.UpstreamTLSRequired = cfg, true })
			var ssl bool
			// The server may take a moment to load its certificate after the reload.
			eventually(t, "an encrypted upstream session", func() bool {
				c, err := pgx.Connect(ctx, p.dsn("postgres", ""))
				if err != nil {
					return false
				}
				defer c.Close(ctx)
				return c.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl) == nil && ssl
			})
		})
	}
	t.Run("verify-full with the wrong CA", func(t *testing.T) {
		p := startProxy(t, func(o *proxy.Options) {
			o.UpstreamTLS, o.UpstreamTLSRequired = &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}, true
		})
		_, err := pgx.Connect(ctx, p.dsn("postgres", ""))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "08001" || !strings.Contains(pgErr.Message, "certificate") {
			t.Fatalf("want 08001 about the certificate, got %v", err)
		}
	})
}
