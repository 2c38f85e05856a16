package pgtest

import (
	"fmt"
	"os"
	"testing"
)

// RunMain is meant for TestMain: it starts one cluster for the package,
// stores it in *store, runs setup, runs the tests and stops the cluster. It
// returns the exit code for os.Exit. If the cluster cannot start or setup
// fails it prints why to stderr and returns 1: tests never skip for want of
// a database.
//
//	var db *pgtest.Cluster
//
//	func TestMain(m *testing.M) {
//		os.Exit(pgtest.RunMain(m, pgtest.Options{}, nil, &db))
//	}
func RunMain(m *testing.M, opts Options, setup func(*Cluster) error, store **Cluster) int {
	c, err := Start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: cannot start PostgreSQL for the tests: %v\n", err)
		return 1
	}
	if store != nil {
		*store = c
	}
	code := runTests(m, c, setup)
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// runTests runs setup and, if it succeeds, the tests.
func runTests(m *testing.M, c *Cluster, setup func(*Cluster) error) int {
	if setup != nil {
		if err := setup(c); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: setup failed: %v\n", err)
			return 1
		}
	}
	return m.Run()
}
