// Command pgveil is a PostgreSQL wire-protocol proxy that masks personal
// data in query results for untrusted login roles.
//
// Usage:
//
//	pgveil --config pgveil.yaml          run the proxy
//	pgveil <command> --help              help for a command
//	pgveil --version                     version, commit, Go and parser versions
//
// Exit status: 0 on success (and after a clean shutdown), 1 when the
// command failed, 2 for a usage error; pgveil explain exits 3 when the
// proxy would reject the query.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// command is one subcommand of the pgveil binary.
type command struct {
	name  string
	short string
	run   func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the proxy (the default when no command is given)", runServe},
		{"demo", "run the proxy in front of a throwaway PostgreSQL to try it", runDemo},
		{"check", "check the rules against the live database", runCheck},
		{"scan", "find columns that look like personal data, and write starter rules", runScan},
		{"anonymize", "anonymize the rows of a list of keys (a data-protection officer's batch)", runAnonymize},
		{"explain", "show what a role would get for a query: masks per column, or the rejection", runExplain},
		{"guard", "install the triggers that keep anonymized rows anonymized (or --drop them)", runGuard},
		{"version", "print the version, commit, Go and SQL parser versions (also --version)", runVersion},
	}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatch picks the subcommand; a first argument that is a flag means serve.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		return runVersion(args[1:], stdout, stderr)
	}
	if len(args) == 0 || (len(args[0]) > 0 && args[0][0] == '-' && args[0] != "-h" && args[0] != "--help") {
		return runServe(args, stdout, stderr)
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		return 0
	}
	fmt.Fprintf(stderr, "\npgveil: unknown command %q\n", args[0])
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "pgveil: a PostgreSQL proxy that masks personal data for untrusted roles.")
	fmt.Fprintln(w, "\nUsage: pgveil [command] [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w, "\nRun 'pgveil <command> --help' for a command's flags.")
	fmt.Fprintln(w, "Exit status: 0 success, 1 failure, 2 usage error; explain: 3 when the query would be rejected.")
}

// newFlags creates a command's flag set: errors and usage go to stderr,
// and --help prints usage followed by the flags.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// flagsOnly reports whether a command that takes no arguments got none,
// and says so on stderr when it did (a usage error, status 2).
func flagsOnly(fs *flag.FlagSet, stderr io.Writer) bool {
	if fs.NArg() == 0 {
		return true
	}
	fmt.Fprintf(stderr, "pgveil %s: unexpected argument %q (flags only; see pgveil %s --help)\n", fs.Name(), fs.Arg(0), fs.Name())
	return false
}

// parseLogged parses a command's flags, log flags included, and builds its
// logger. When the command must stop, ok is false and status is its exit
// status (0 after --help, 2 for a usage error).
func parseLogged(fs *flag.FlagSet, lf *logFlags, args []string, stderr io.Writer) (log *slog.Logger, status int, ok bool) {
	if err := fs.Parse(args); err != nil {
		return nil, usageStatus(err), false
	}
	log, err := lf.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "pgveil:", err)
		return nil, 2, false
	}
	return log, 0, true
}
