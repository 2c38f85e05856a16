package main

import (
	"fmt"
	"slices"
	"strconv"
)

// The sections of a run. The pgbench modes each make one group of rows in
// the table (and of bars in the chart); bulk and idle are measured by this
// program itself (bulk.go, idle.go).
const (
	rwMode      = "rw"
	manyMode    = "many"
	bulkSection = "bulk"
	idleSection = "idle"
)

// defaultModes is every section, in the order of the table.
const defaultModes = "simple,extended," + rwMode + "," + manyMode + "," + connectMode + "," + bulkSection + "," + idleSection

// pgbenchModes are the modes pgbench runs, by name, with its options for
// the script, the protocol and the connections. The read-write script
// runs over the extended protocol, as an application's driver sends it.
var pgbenchModes = map[string][]string{
	"simple":    {"-S", "-M", "simple"},
	"extended":  {"-S", "-M", "extended"},
	"prepared":  {"-S", "-M", "prepared"},
	rwMode:      {"-b", "tpcb-like", "-M", "extended"},
	manyMode:    {"-S", "-M", "simple"},
	connectMode: {"-S", "-M", "simple", "-C"},
}

// isSection reports whether name is a section --modes may select.
func isSection(name string) bool {
	_, ok := pgbenchModes[name]
	return ok || name == bulkSection || name == idleSection
}

// pgbenchModesOf is the pgbench modes among the selected sections, in
// their order.
func pgbenchModesOf(sections []string) []string {
	return slices.DeleteFunc(slices.Clone(sections), func(s string) bool { _, ok := pgbenchModes[s]; return !ok })
}

// modeArgs are pgbench's options for mode: the script and protocol, the
// clients and threads (--many-clients in many mode) and the duration,
// allowance seconds longer than --seconds.
func modeArgs(cfg config, mode string, allowance int) []string {
	clients := cfg.clients
	if mode == manyMode {
		clients = cfg.manyClients
	}
	return append(slices.Clone(pgbenchModes[mode]), "-c", strconv.Itoa(clients), "-j", strconv.Itoa(cfg.threads),
		"-T", strconv.Itoa(cfg.seconds+allowance))
}

// connectAllowance is the seconds many mode first adds to -T for its
// clients to connect: pgbench's clock runs while they do (on this 2-core
// machine 200 clients take 3 s to connect directly, and 13 s or more
// through pgveil when the machine is busy), though its TPS leaves that
// time out.
func connectAllowance(clients int) int {
	return clients / 25
}

// modeNotes says what the modes of a run measure, one line each, for the
// report: the table's mode column is only the name.
func modeNotes(s settings) []string {
	var notes []string
	for _, m := range s.Modes {
		switch m {
		case "simple", "extended", "prepared":
			notes = append(notes, fmt.Sprintf("%s: pgbench -S (select-only) -M %s, %d clients", m, m, s.Clients))
		case rwMode:
			notes = append(notes, fmt.Sprintf("%s: pgbench's default read-write script (TPC-B-like: 3 UPDATEs, a SELECT, an INSERT) -M extended, %d clients", m, s.Clients))
		case manyMode:
			notes = append(notes, fmt.Sprintf("%s: pgbench -S -M simple, %d clients", m, s.ManyClients))
		}
	}
	return notes
}
