package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgveil/pgveil/masking"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rules"
)

// logFlags are the logging flags every command shares.
type logFlags struct{ format, level string }

func (l *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&l.format, "log-format", "text", "log format: text or json")
	fs.StringVar(&l.level, "log-level", "info", "log level: debug, info, warn or error")
}

func (l *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch l.format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", l.format)
}

func runServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("serve", "Usage: pgveil [serve] --config FILE\n\nRuns the proxy. SIGHUP reloads the configuration; SIGTERM or SIGINT stops\naccepting clients, lets running queries finish (shutdown_timeout), then exits.\nExit status: 0 after a clean shutdown, 1 on failure, 2 on a usage error.\n\nFlags:", stderr)
	config := fs.String("config", "pgveil.yaml", "configuration file")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until the proxy stops (for performance work)")
	var lf logFlags
	lf.register(fs)
	log, status, ok := parseLogged(fs, &lf, args, stderr)
	if !ok {
		return status
	}
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "pgveil: --cpuprofile:", err)
			return 1
		}
		defer stop()
	}
	if err := serve(*config, log); err != nil {
		fmt.Fprintln(stderr, "pgveil:", err)
		return 1
	}
	return 0
}

// usageStatus maps a flag parsing error to an exit status.
func usageStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// serve runs the proxy until SIGTERM or SIGINT.
func serve(path string, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return serveUntil(ctx, path, log)
}

// serveUntil runs the proxy until ctx ends, then shuts it down gracefully.
// SIGHUP reloads the configuration meanwhile.
func serveUntil(ctx context.Context, path string, log *slog.Logger) error {
	loaded, err := loadRules(path)
	if err != nil {
		return err
	}
	cfg := loaded.cfg
	g := masking.NewGuard(cfg, log)
	defer g.Close()
	prepareDatabases(g, cfg, nil, log)
	logRuleChanges(ctx, "start", nil, loaded, log)
	opts, err := proxyOptions(cfg, g)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g.RegisterMetrics(reg)
	srv := proxy.New(opts, log, proxy.NewMetrics(reg))
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		if err := serveMetrics(cfg.MetricsListen, reg, log); err != nil {
			ln.Close()
			return err
		}
	}
	log.Info("pgveil listening", "listen", ln.Addr().String(), "upstream", cfg.Upstream)
	go reloadOnHangup(ctx, srv, g, path, log)
	shutdownDone := make(chan struct{})
	go func() {
		defer close(shutdownDone)
		<-ctx.Done()
		log.Info("shutting down", "sessions", srv.Sessions())
		if err := srv.Shutdown(context.Background()); err != nil {
			log.Warn("shutdown timeout passed; closed the remaining sessions", "err", err)
		}
	}()
	err = srv.Serve(ln)
	if err == nil {
		<-shutdownDone
	}
	return err
}

// reloadOnHangup reloads the configuration on every SIGHUP until ctx ends.
func reloadOnHangup(ctx context.Context, srv *proxy.Server, g *masking.Guard, path string, log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			reload(srv, g, path, log)
		}
	}
}

// reload re-reads the configuration; an invalid file keeps what is in force.
func reload(srv *proxy.Server, g *masking.Guard, path string, log *slog.Logger) {
	loaded, err := loadRules(path)
	if err == nil {
		cfg := loaded.cfg
		var opts proxy.Options
		if opts, err = proxyOptions(cfg, g); err == nil {
			old := g.Config()
			g.Reload(cfg)
			prepareDatabases(g, cfg, g.OpenDatabases(), log)
			srv.Reload(opts)
			log.Info("configuration reloaded", "path", path)
			logRuleChanges(context.Background(), "reload", old, loaded, log)
			return
		}
	}
	log.Error("configuration not reloaded; the previous one stays in force", "err", err)
}

// proxyOptions builds the proxy's options from the configuration. A file
// that declares no tables makes a plain proxy: there is nothing to mask.
func proxyOptions(cfg *rules.Config, g *masking.Guard) (proxy.Options, error) {
	opts := proxy.Options{
		Upstream:        cfg.Upstream,
		MaxMessageSize:  cfg.MaxMessageSize,
		ShutdownTimeout: time.Duration(cfg.ShutdownTimeout),
		PeerID:          cfg.PeerID,
		Peers:           cfg.Peers,
	}
	if cfg.HasTables() {
		opts.Guard = guard{g}
	}
	if cfg.TLS.Enabled() {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			return opts, fmt.Errorf("tls: %w", err)
		}
		opts.ClientTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	up, err := upstreamTLS(cfg)
	if err != nil {
		return opts, err
	}
	opts.UpstreamTLS = up
	opts.UpstreamTLSRequired = cfg.UpstreamTLS != "disable"
	return opts, nil
}

// upstreamTLS builds the TLS configuration for connecting to the server.
func upstreamTLS(cfg *rules.Config) (*tls.Config, error) {
	switch cfg.UpstreamTLS {
	case "require":
		return &tls.Config{InsecureSkipVerify: true}, nil // encrypts without verifying, like libpq's sslmode=require
	case "verify-full":
		host, _, _ := net.SplitHostPort(cfg.Upstream)
		tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if cfg.UpstreamTLSCA != "" {
			pem, err := os.ReadFile(cfg.UpstreamTLSCA)
			if err != nil {
				return nil, fmt.Errorf("upstream_tls_ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("upstream_tls_ca: no certificate found in %s", cfg.UpstreamTLSCA)
			}
		}
		return tc, nil
	}
	return nil, nil
}

// serveMetrics serves Prometheus metrics at /metrics.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics_listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go func() {
		if err := http.Serve(ln, mux); err != nil {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	return nil
}

// startCPUProfile profiles the process into path until the returned stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// prepareDatabases checks the rules (at start and on reload) in the
// databases the proxy knows of: those open, those under databases:, and
// the admin connection's. When the rules let a role run ANONYMIZE, it
// creates the audit log there too. Other databases are prepared when a
// session first uses them. Failures are logged: the proxy starts anyway,
// and ANONYMIZE fails where the log is missing, saying why.
func prepareDatabases(g *masking.Guard, cfg *rules.Config, open []string, log *slog.Logger) {
	names := append(open, cfg.DatabaseNames()...)
	if db := adminDatabase(cfg); db != "" {
		names = append(names, db)
	}
	slices.Sort(names)
	for _, name := range slices.Compact(names) {
		d, err := g.UseDatabase(name)
		if err != nil {
			log.Error("cannot open the database to check the rules", "database", name, "err", err)
			continue
		}
		if len(cfg.Roles.Anonymize) > 0 && len(cfg.ForDatabase(name).Tables) > 0 {
			d.AuditLog(cfg.Roles.Anonymize) // logs its own failure
		}
		d.Release()
	}
}
