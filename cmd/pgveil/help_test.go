package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestHelpEveryCommand runs "<command> --help" for every command: each
// exits 0 and prints a usage that names the command, its flags and its
// exit statuses. pgveil --help lists every command.
func TestHelpEveryCommand(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := dispatch([]string{c.name, "--help"}, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, want 0", code)
			}
			usage := stdout.String() + stderr.String()
			for _, want := range []string{"Usage: pgveil", c.name, "Exit status", "-log-format"} {
				if want == "-log-format" && c.name == "version" {
					continue // prints and exits; nothing to log
				}
				if !strings.Contains(usage, want) {
					t.Errorf("usage lacks %q:\n%s", want, usage)
				}
			}
		})
	}
	var stdout, stderr bytes.Buffer
	if code := dispatch([]string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("pgveil --help: exit %d", code)
	}
	usage := stdout.String() + stderr.String()
	for _, c := range commands() {
		if !strings.Contains(usage, "  "+c.name+" ") || !strings.Contains(usage, c.short) {
			t.Errorf("pgveil --help does not list %s:\n%s", c.name, usage)
		}
	}
	if !strings.Contains(usage, "Exit status") {
		t.Errorf("pgveil --help does not give the exit statuses:\n%s", usage)
	}
}
