// Command bench compares pgveil with PostgreSQL reached directly and
// through pgbouncer, in one run, section by section (--modes):
//
//   - pgbench's select-only script over each protocol (simple, extended,
//     prepared), its read-write script (rw, modes.go), select-only with
//     --many-clients clients (many), and a new connection per transaction
//     (connect, connect.go): TPS, latency and the relay's CPU time;
//   - bulk: one client reads a table of --bulk-rows rows (bulk.go);
//   - idle: the relay's resident memory per idle session (idle.go);
//   - the ANONYMIZE plan against hand-written UPDATEs (anonymize.go).
//
// Run it with
//
//	go build -o bin/pgveil ./cmd/pgveil && go run ./bench --pgveil bin/pgveil
//
// Without --upstream it starts a throwaway PostgreSQL (internal/pgtest).
// Every target is measured in every round, the target order alternating
// between rounds, and the table shows medians over the rounds. Progress goes
// to stderr, the tables to stdout, the chart (svg.go) to --svg.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// config holds the command-line flags.
type config struct {
	pgveil      string
	pgbouncer   string
	upstream    string
	anonRows    int
	user        string
	db          string
	scale       int
	clients     int
	threads     int
	seconds     int
	rounds      int
	modes       []string
	jsonPath    string
	svgPath     string
	extraConfig string
	maskedUser  string
	// manyClients are many mode's pgbench clients.
	manyClients int
	// bulkRows is the bulk section's table size; idleSessions how many
	// sessions the idle section opens per target.
	bulkRows     int
	idleSessions int
}

func main() {
	os.Exit(run())
}

// run parses flags, runs the benchmark and cleans up; it returns the exit
// code.
func run() int {
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var undo cleanups
	err = bench(ctx, cfg, &undo)
	undo.run()
	if err != nil {
		if ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		slog.Error("bench failed", "err", err)
		return 1
	}
	return 0
}

// parseFlags reads the command line into a config.
func parseFlags(args []string) (config, error) {
	var c config
	var modes string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&c.pgveil, "pgveil", "bin/pgveil", "pgveil binary to benchmark")
	fs.StringVar(&c.pgbouncer, "pgbouncer", "", "pgbouncer binary (default: PATH, then /usr/sbin/pgbouncer)")
	fs.IntVar(&c.anonRows, "anonymize-rows", 50000, "customers (with 3 child rows each) for the ANONYMIZE benchmark; 0 skips it")
	fs.StringVar(&c.upstream, "upstream", "", "host:port of an existing PostgreSQL (default: start a throwaway one)")
	fs.StringVar(&c.user, "user", "postgres", "role for --upstream (password from PGPASSWORD)")
	fs.StringVar(&c.db, "db", "postgres", "database to run pgbench in")
	fs.IntVar(&c.scale, "scale", 10, "pgbench -i scale factor")
	fs.IntVar(&c.clients, "clients", 8, "pgbench clients (-c)")
	fs.IntVar(&c.threads, "threads", 2, "pgbench threads (-j)")
	fs.IntVar(&c.seconds, "seconds", 5, "seconds per pgbench run (-T)")
	fs.IntVar(&c.rounds, "rounds", 3, "rounds; the target order alternates between rounds")
	fs.StringVar(&modes, "modes", defaultModes, "comma-separated sections: pgbench -S query modes (simple, extended, prepared), "+
		"rw (pgbench's read-write script), many (-S with --many-clients), connect (connections per second, -C), "+
		"bulk (one client reads --bulk-rows rows), idle (proxy memory per idle session)")
	fs.IntVar(&c.manyClients, "many-clients", 200, "pgbench clients in many mode")
	fs.IntVar(&c.bulkRows, "bulk-rows", 1000000, "rows of the bulk read's table (about 200 bytes each)")
	fs.IntVar(&c.idleSessions, "idle-sessions", 1000, "idle sessions the idle section opens through each relay")
	fs.StringVar(&c.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&c.svgPath, "svg", "docs/bench.svg", "also write a bar chart of TPS and p99 latency as SVG to this file (\"\" for none)")
	fs.StringVar(&c.extraConfig, "extra-config", "", "YAML file appended to the generated pgveil config")
	fs.StringVar(&c.maskedUser, "masked-user", "", "also run through pgveil as this role (created, granted SELECT)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.modes = splitList(modes)
	return c, c.validate()
}

// validate rejects flag values pgbench would choke on.
func (c config) validate() error {
	if c.clients < 1 || c.threads < 1 || c.seconds < 1 || c.rounds < 1 || c.scale < 1 ||
		c.manyClients < 1 || c.bulkRows < 1 || c.idleSessions < 1 {
		return errors.New("--clients, --threads, --seconds, --rounds, --scale, --many-clients, --bulk-rows and --idle-sessions must be at least 1")
	}
	if len(c.modes) == 0 {
		return errors.New("--modes is empty")
	}
	for _, m := range c.modes {
		if !isSection(m) {
			return fmt.Errorf("--modes: unknown section %q (want some of %s, or prepared)", m, defaultModes)
		}
	}
	return nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// bench runs the whole benchmark: upstream, targets, rounds, report.
func bench(ctx context.Context, cfg config, undo *cleanups) error {
	dir, err := workDir(undo)
	if err != nil {
		return err
	}
	up, err := setupUpstream(ctx, cfg, undo)
	if err != nil {
		return err
	}
	if err := prepareData(ctx, cfg, up); err != nil {
		return err
	}
	targets, skipped, err := startTargets(cfg, up, dir, undo)
	if err != nil {
		return err
	}
	runs, err := runRounds(ctx, cfg, up, targets, dir)
	if err != nil {
		return err
	}
	rep := newReport(cfg, up, targets, runs, skipped)
	if slices.Contains(cfg.modes, bulkSection) {
		if rep.Bulk, err = benchBulk(ctx, cfg, up, targets); err != nil {
			return err
		}
	}
	if slices.Contains(cfg.modes, idleSection) {
		if rep.Idle, err = benchIdle(ctx, cfg, up, dir); err != nil {
			return err
		}
	}
	if cfg.anonRows > 0 {
		if rep.Anonymize, err = benchAnonymize(ctx, cfg, up); err != nil {
			return err
		}
	}
	rep.print(os.Stdout)
	if cfg.svgPath != "" {
		if err := rep.writeSVG(cfg.svgPath); err != nil {
			return err
		}
		slog.Info("wrote the chart", "path", cfg.svgPath)
	}
	if cfg.jsonPath != "" {
		return rep.writeJSON(cfg.jsonPath)
	}
	return nil
}

// cleanups is a stack of undo steps run in reverse order.
type cleanups []func()

// add pushes an undo step.
func (c *cleanups) add(f func()) { *c = append(*c, f) }

// run pops and runs every undo step.
func (c *cleanups) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}
