package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/rules"
)

// databaseFlags are the flags that pick the database a command works on:
// --database, and for check and guard --all-databases.
type databaseFlags struct {
	name string
	all  bool
}

// register adds --database, and --all-databases when withAll.
func (d *databaseFlags) register(fs *flag.FlagSet, withAll bool) {
	fs.StringVar(&d.name, "database", "", "the database to work on, whatever the connection string names (default: the one it names)")
	if withAll {
		fs.BoolVar(&d.all, "all-databases", false, "work on every database named under databases: in the rules, one after the other")
	}
}

// valid reports whether the flags go together, and says so on stderr
// when they do not (a usage error).
func (d *databaseFlags) valid(fs *flag.FlagSet, stderr io.Writer) bool {
	if d.all && d.name != "" {
		fmt.Fprintf(stderr, "pgveil %s: --database and --all-databases exclude each other\n", fs.Name())
		return false
	}
	return true
}

// each runs fn for the database of --database ("" for the connection's
// own), or with --all-databases for every database under databases:, and
// returns the worst exit status.
func (d *databaseFlags) each(command string, cfg *rules.Config, stderr io.Writer, fn func(database string) int) int {
	if !d.all {
		return fn(d.name)
	}
	names := cfg.DatabaseNames()
	if len(names) == 0 {
		fmt.Fprintf(stderr, "pgveil %s: --all-databases: %s names no database under databases:\n", command, configName(cfg))
		return 2
	}
	worst := 0
	for _, name := range names {
		worst = max(worst, fn(name))
	}
	return worst
}

// connDatabase is the database a connection is in: the one it names, else
// the user's name, as PostgreSQL takes it.
func connDatabase(conn *pgx.Conn) string {
	cc := conn.Config()
	return databaseName(cc.Database, cc.User)
}
