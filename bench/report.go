package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is what the bench prints and writes as JSON.
type report struct {
	Machine  machine  `json:"machine"`
	Date     string   `json:"date"` // when it ran, YYYY-MM-DD (UTC)
	Settings settings `json:"settings"`
	Skipped  []string `json:"skipped,omitempty"`
	Rows     []row    `json:"results"`
	// Bulk and Idle are the bulk and idle sections, when they ran.
	Bulk []bulkRow `json:"bulk,omitempty"`
	Idle []idleRow `json:"idle,omitempty"`
	// Anonymize is the ANONYMIZE benchmark, when it ran.
	Anonymize *anonResult `json:"anonymize,omitempty"`
	// Targets judges the run against the performance targets (verdict.go).
	Targets []verdict `json:"targets,omitempty"`
}

// machine describes where the numbers come from.
type machine struct {
	CPUs       int    `json:"cpus"`
	CPUModel   string `json:"cpu_model"`
	PostgreSQL string `json:"postgresql"`
	ClockTicks int64  `json:"clock_ticks_per_second"`
}

// settings are the workload parameters.
type settings struct {
	Clients int      `json:"clients"`
	Threads int      `json:"threads"`
	Seconds int      `json:"seconds"`
	Rounds  int      `json:"rounds"`
	Scale   int      `json:"scale"`
	Modes   []string `json:"modes"`
	// ManyClients are many mode's clients; BulkRows and IdleSessions
	// the sizes of the bulk and idle sections.
	ManyClients  int `json:"many_clients"`
	BulkRows     int `json:"bulk_rows"`
	IdleSessions int `json:"idle_sessions"`
	// Login is the role connect mode logs in as; LoginAuth says how.
	Login     string `json:"connect_login,omitempty"`
	LoginAuth string `json:"connect_login_auth,omitempty"`
}

// row holds the medians of one (mode, target) over all rounds.
type row struct {
	Mode           string   `json:"mode"`
	Target         string   `json:"target"`
	TPS            float64  `json:"tps"`
	AvgMs          float64  `json:"avg_ms"`
	P99Ms          float64  `json:"p99_ms"`
	CPUUsPerTxn    *float64 `json:"cpu_us_per_txn"`
	TPSVsPgbouncer *float64 `json:"tps_vs_pgbouncer"`
	CPUVsPgbouncer *float64 `json:"cpu_vs_pgbouncer"`
	// Refused is pgveil's error when it refused the script; the row then
	// has no figures.
	Refused string   `json:"refused,omitempty"`
	Runs    []result `json:"runs"`
}

// newReport summarises the runs into one row per (mode, target).
func newReport(cfg config, up *upstream, targets []target, runs []result, skipped []string) report {
	rep := report{
		Machine: machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(),
			PostgreSQL: up.version, ClockTicks: clockTicks()},
		Settings: settings{Clients: cfg.clients, Threads: cfg.threads, Seconds: cfg.seconds,
			Rounds: cfg.rounds, Scale: cfg.scale, Modes: cfg.modes, Login: up.login.name, LoginAuth: up.login.auth(),
			ManyClients: cfg.manyClients, BulkRows: cfg.bulkRows, IdleSessions: cfg.idleSessions},
		Skipped: skipped,
		Date:    time.Now().UTC().Format(time.DateOnly),
	}
	for _, mode := range pgbenchModesOf(cfg.modes) {
		var rows []row
		for _, t := range targetsFor(mode, targets) {
			rows = append(rows, summarise(mode, t.name, runs))
		}
		rep.Rows = append(rep.Rows, withRatios(rows)...)
	}
	return rep
}

// summarise takes the median of each metric over the runs of mode/target.
func summarise(mode, name string, runs []result) row {
	r := row{Mode: mode, Target: name}
	var tps, avg, p99, cpu []float64
	for _, x := range runs {
		if x.Mode != mode || x.Target != name {
			continue
		}
		r.Runs = append(r.Runs, x)
		if x.Refused != "" {
			r.Refused = x.Refused
			continue
		}
		tps, avg, p99 = append(tps, x.TPS), append(avg, x.AvgMs), append(p99, x.P99Ms)
		if x.CPUUsPerTxn != nil {
			cpu = append(cpu, *x.CPUUsPerTxn)
		}
	}
	r.TPS, r.AvgMs, r.P99Ms = median(tps), median(avg), median(p99)
	if len(cpu) > 0 {
		m := median(cpu)
		r.CPUUsPerTxn = &m
	}
	return r
}

// withRatios fills the ratios of one mode's rows against its pgbouncer row.
func withRatios(rows []row) []row {
	i := slices.IndexFunc(rows, func(r row) bool { return r.Target == "pgbouncer" })
	if i < 0 {
		return rows
	}
	base := rows[i]
	for j := range rows {
		rows[j].TPSVsPgbouncer = ratio(rows[j].TPS, base.TPS)
		if rows[j].CPUUsPerTxn != nil && base.CPUUsPerTxn != nil {
			rows[j].CPUVsPgbouncer = ratio(*rows[j].CPUUsPerTxn, *base.CPUUsPerTxn)
		}
	}
	return rows
}

// ratio is a/b, or nil when b is zero.
func ratio(a, b float64) *float64 {
	if b == 0 {
		return nil
	}
	r := a / b
	return &r
}

// median of values; 0 for none.
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(values))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// print writes the machine, the workload and the table.
func (rep report) print(w io.Writer) {
	m, s := rep.Machine, rep.Settings
	fmt.Fprintf(w, "\nmachine: %d CPUs, %s, PostgreSQL %s\n", m.CPUs, m.CPUModel, m.PostgreSQL)
	fmt.Fprintf(w, "workload: pgbench, scale %d, %d threads, %d s per run; median of %d rounds, the target order alternating\n",
		s.Scale, s.Threads, s.Seconds, s.Rounds)
	for _, note := range modeNotes(s) {
		fmt.Fprintf(w, "  %s\n", note)
	}
	fmt.Fprintf(w, "relay CPU: utime+stime of the relay process from /proc (%d ticks/s) per transaction\n", m.ClockTicks)
	if slices.Contains(s.Modes, connectMode) {
		fmt.Fprintf(w, "connect: pgbench -S -C, a new connection per transaction (TPS = connections/s) as %s (%s);\n"+
			"  pgveil-pgbouncer: pgveil in front of PgBouncer, pgbouncer-pgveil: PgBouncer in front of pgveil,\n"+
			"  both PgBouncer in transaction mode (CPU: the front relay's alone)\n", s.Login, s.LoginAuth)
	}
	for _, note := range rep.Skipped {
		fmt.Fprintf(w, "skipped %s\n", note)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "mode\ttarget\tTPS\tavg ms\tp99 ms\tCPU µs/txn\tTPS vs pgbouncer\tCPU vs pgbouncer")
	for _, r := range rep.Rows {
		if r.Refused != "" {
			fmt.Fprintf(tw, "%s\t%s\trefused\t-\t-\t-\t-\t-\n", r.Mode, r.Target)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.3f\t%.3f\t%s\t%s\t%s\n", r.Mode, r.Target, r.TPS, r.AvgMs, r.P99Ms,
			orDash(r.CPUUsPerTxn, "%.1f"), orDash(r.TPSVsPgbouncer, "%.2fx"), orDash(r.CPUVsPgbouncer, "%.2fx"))
	}
	_ = tw.Flush()
	for _, r := range rep.Rows {
		if r.Refused != "" {
			fmt.Fprintf(w, "%s %s: pgveil refused the script %s\n", r.Mode, r.Target, r.Refused)
		}
	}
	printBulk(w, rep.Bulk, s.Rounds)
	printIdle(w, rep.Idle)
	if rep.Anonymize != nil {
		rep.Anonymize.print(w)
	}
	printVerdicts(w, rep.verdicts())
}

// orDash formats v, or "-" when it is missing.
func orDash(v *float64, format string) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf(format, *v)
}

// writeJSON writes the report as indented JSON to path.
func (rep report) writeJSON(path string) error {
	rep.Targets = rep.verdicts()
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
}

// cpuModel is the first "model name" in /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown CPU"
}
