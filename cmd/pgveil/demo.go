package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/pgveil/pgveil/internal/pgtest"
)

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", "Usage: pgveil demo [--listen host:port]\n\nStarts a throwaway PostgreSQL cluster in a temporary directory, starts the\nproxy in front of it and prints how to connect. Ctrl-C stops both and\nremoves the directory. Needs PostgreSQL's server binaries\n(Debian: apt-get install -y postgresql).\nExit status: 0 after Ctrl-C, 1 on failure, 2 on a usage error.\n\nFlags:", stderr)
	listen := fs.String("listen", "127.0.0.1:6432", "where the demo proxy listens")
	var lf logFlags
	lf.register(fs)
	log, status, ok := parseLogged(fs, &lf, args, stderr)
	if !ok {
		return status
	}
	if err := demo(*listen, stdout, log); err != nil {
		fmt.Fprintln(stderr, "pgveil demo:", err)
		return 1
	}
	return 0
}

// demo runs the proxy in front of a throwaway cluster until Ctrl-C.
func demo(listen string, stdout io.Writer, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(stdout, "Starting a throwaway PostgreSQL cluster...")
	db, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		return err
	}
	defer db.Stop()
	cfgPath := filepath.Join(db.Dir, "pgveil.yaml")
	cfg := fmt.Sprintf("listen: %s\nupstream: %s\n", listen, db.Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return err
	}
	host, port, _ := net.SplitHostPort(listen)
	fmt.Fprintf(stdout, "PostgreSQL is at %s (data in %s)\n", db.Addr(), db.DataDir)
	fmt.Fprintf(stdout, "pgveil listens on %s with %s\n\nConnect:\n  psql \"host=%s port=%s user=postgres dbname=postgres\"\n\nCtrl-C stops everything and removes the temporary directory.\n",
		listen, cfgPath, host, port)
	errc := make(chan error, 1)
	go func() { errc <- serveUntil(ctx, cfgPath, log) }()
	return <-errc
}
