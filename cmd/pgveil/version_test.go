package main

import (
	"bytes"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersion runs pgveil --version and pgveil version: both print the
// version, the commit, Go's version and pg_query's, with the PostgreSQL
// release of the parser. Link-time values (make build) win over the build
// information of the binary.
var pgQueryLine = regexp.MustCompile(`(?m)^pg_query: v6\.\d+\.\d+ \(PostgreSQL \d+\.\d+ parser\)$`)

func TestVersion(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v1.2.3-4-gabcdef0-dirty", "abcdef0123456789abcdef0123456789abcdef01"
	for _, args := range [][]string{{"--version"}, {"-version"}, {"version"}} {
		var stdout, stderr bytes.Buffer
		if code := dispatch(args, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr.String())
		}
		out := stdout.String()
		for _, want := range []string{
			"pgveil v1.2.3-4-gabcdef0-dirty\n",
			"commit:   abcdef0123456789abcdef0123456789abcdef01 (with uncommitted changes)\n",
			"go:       " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q:\n%s", args, want, out)
			}
		}
		if !pgQueryLine.MatchString(out) {
			t.Errorf("%v: no pg_query line like %s:\n%s", args, pgQueryLine, out)
		}
	}
}

func TestVersionDefaultsAndUsage(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "", ""
	v := buildVersion()
	// go test builds with no module version and (here) no vcs settings.
	if v.Version == "" || v.PgQuery == "unknown" || !regexp.MustCompile(`^\d+\.\d+$`).MatchString(v.Parser) {
		t.Errorf("build info: %+v", v)
	}
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"version", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "Usage: pgveil version") {
		t.Errorf("version --help: exit %d: %s", code, stderr.String())
	}
	stderr.Reset()
	if code := dispatch([]string{"version", "extra"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unexpected argument "extra"`) {
		t.Errorf("version extra: exit %d: %s", code, stderr.String())
	}
}
