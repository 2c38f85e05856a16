package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// version and commit are set at link time (make build passes git describe
// and git rev-parse HEAD):
//
//	go build -ldflags "-X main.version=v1.2.0 -X main.commit=$(git rev-parse HEAD)"
//
// Empty means what the Go toolchain recorded in the binary: the module
// version and the vcs.* settings. The toolchain records no vcs.* settings
// when building with -buildvcs=false, or from a git worktree (whose .git is
// a file), hence the link-time values.
var version, commit string

const pgQueryModule = "github.com/pganalyze/pg_query_go/v6"

const versionUsage = `Usage: pgveil version (or pgveil --version)

Prints pgveil's version, the commit it was built from (and whether the work
tree had uncommitted changes), the Go version, and the version of
pg_query_go with the PostgreSQL release its SQL parser comes from.

Exit status: 0; 2 for a usage error.`

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("version", versionUsage, stderr)
	if err := fs.Parse(args); err != nil {
		return usageStatus(err)
	}
	if !flagsOnly(fs, stderr) {
		return 2
	}
	writeVersion(stdout, buildVersion())
	return 0
}

// versionInfo is what pgveil version prints.
type versionInfo struct {
	Version  string
	Commit   string // "" when the build recorded none (go run, go test)
	Time     string // the commit's time
	Modified bool
	Go       string
	PgQuery  string // pg_query_go's module version
	Parser   string // the PostgreSQL release of its parser, like 17.4
}

func buildVersion() versionInfo {
	v := versionInfo{Version: version, Go: runtime.Version(), PgQuery: "unknown", Parser: parserRelease()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v.withDefaults()
	}
	if v.Version == "" {
		v.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	if commit != "" && commit != v.Commit {
		// The toolchain's settings describe another commit, or none.
		v.Commit, v.Time, v.Modified = commit, "", strings.HasSuffix(v.Version, "-dirty")
	}
	for _, d := range info.Deps {
		if d.Path == pgQueryModule {
			v.PgQuery = d.Version
			if d.Replace != nil {
				v.PgQuery += " (replaced by " + d.Replace.Path + " " + d.Replace.Version + ")"
			}
		}
	}
	return v.withDefaults()
}

func (v versionInfo) withDefaults() versionInfo {
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

// parserRelease asks the parser itself: every parse result carries the
// PG_VERSION_NUM of the PostgreSQL sources it was built from (170004 is
// 17.4).
func parserRelease() string {
	tree, err := pg.Parse("SELECT 1")
	if err != nil {
		return "unknown"
	}
	n := tree.GetVersion()
	return fmt.Sprintf("%d.%d", n/10000, n%100)
}

// commitNote gives the commit's time and whether the tree had changes, as
// far as they are known.
func commitNote(v versionInfo) string {
	var notes []string
	if v.Time != "" {
		notes = append(notes, v.Time)
	}
	if v.Modified {
		notes = append(notes, "with uncommitted changes")
	}
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, ", ") + ")"
}

func writeVersion(w io.Writer, v versionInfo) {
	fmt.Fprintf(w, "pgveil %s\n", v.Version)
	switch {
	case v.Commit == "":
		fmt.Fprintln(w, "commit:   unknown (built without version control information)")
	default:
		fmt.Fprintf(w, "commit:   %s%s\n", v.Commit, commitNote(v))
	}
	fmt.Fprintf(w, "go:       %s %s/%s\n", v.Go, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "pg_query: %s (PostgreSQL %s parser)\n", v.PgQuery, v.Parser)
}
