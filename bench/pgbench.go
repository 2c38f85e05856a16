package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// result is the measurement of one pgbench run against one target.
type result struct {
	Round       int      `json:"round"`
	Mode        string   `json:"mode"`
	Target      string   `json:"target"`
	TPS         float64  `json:"tps"`
	AvgMs       float64  `json:"avg_ms"`
	P99Ms       float64  `json:"p99_ms"`
	Txns        int64    `json:"transactions"`
	Failed      int64    `json:"failed_transactions"`
	CPUUsPerTxn *float64 `json:"cpu_us_per_txn"` // nil when there is no relay
	// Refused is pgveil's error when it refused a statement of the
	// script (the run then has no figures).
	Refused string `json:"refused,omitempty"`
}

// runRounds measures every (mode, target) once per round. Rounds 2, 4, ... run
// the targets in reverse order so no target always goes first.
func runRounds(ctx context.Context, cfg config, up *upstream, targets []target, dir string) ([]result, error) {
	var runs []result
	for round := 1; round <= cfg.rounds; round++ {
		for _, mode := range pgbenchModesOf(cfg.modes) {
			for _, t := range roundOrder(targetsFor(mode, targets), round) {
				r, err := measure(ctx, cfg, up, t, mode, dir)
				if err != nil {
					return nil, fmt.Errorf("round %d, %s, %s: %w", round, mode, t.name, err)
				}
				r.Round = round
				slog.Info("measured", "refused", r.Refused != "", "round", round, "mode", mode, "target", t.name,
					"tps", math.Round(r.TPS), "p99_ms", r.P99Ms)
				runs = append(runs, r)
			}
		}
	}
	return runs, nil
}

// roundOrder is the base order in odd rounds and its reverse in even ones.
func roundOrder(targets []target, round int) []target {
	out := slices.Clone(targets)
	if round%2 == 0 {
		slices.Reverse(out)
	}
	return out
}

// errNoTransactions is a run in which pgbench processed nothing: in many
// mode, its clients took the whole run to connect.
var errNoTransactions = errors.New("pgbench processed no transactions")

// maxAllowance bounds the seconds many mode waits for its clients to
// connect.
const maxAllowance = 64

// measure runs mode's script once against t. In many mode a run in which
// the clients took all of -T to connect is run again with twice the
// allowance for connecting (connectAllowance), up to maxAllowance.
func measure(ctx context.Context, cfg config, up *upstream, t target, mode, dir string) (result, error) {
	allowance := 0
	if mode == manyMode {
		allowance = connectAllowance(cfg.manyClients)
	}
	for {
		r, err := measureOnce(ctx, cfg, up, t, mode, dir, allowance)
		if !errors.Is(err, errNoTransactions) || allowance == 0 || allowance >= maxAllowance {
			return r, err
		}
		allowance *= 2
		slog.Warn("the clients took the whole run to connect; running again", "mode", mode, "target", t.name, "connect_seconds", allowance)
	}
}

// measureOnce runs pgbench once against t, charging the relay's CPU time;
// allowance is added to -T.
func measureOnce(ctx context.Context, cfg config, up *upstream, t target, mode, dir string, allowance int) (result, error) {
	logDir, err := os.MkdirTemp(dir, "txlog-")
	if err != nil {
		return result{}, err
	}
	defer func() { _ = os.RemoveAll(logDir) }()
	before, err := relayTicks(t)
	if err != nil {
		return result{}, err
	}
	out, err := runPgbenchCmd(ctx, up.pgbench, pgbenchArgs(cfg, up, t, mode, allowance, logDir), loginEnv(up, t)...)
	if msg := refusal(string(out)); err != nil && msg != "" {
		slog.Warn("pgveil refused the script", "mode", mode, "target", t.name, "error", msg)
		return result{Mode: mode, Target: t.name, Refused: msg}, nil
	}
	if err != nil {
		return result{}, fmt.Errorf("pgbench: %w\n%s", err, out)
	}
	after, err := relayTicks(t)
	if err != nil {
		return result{}, err
	}
	r, err := parseOutput(string(out))
	if err != nil {
		return result{}, fmt.Errorf("%w\n%s", err, out)
	}
	r.Mode, r.Target = mode, t.name
	if r.P99Ms, err = p99FromLogs(logDir); err != nil {
		return result{}, err
	}
	if t.pid != nil {
		cpu := cpuPerTxn(after-before, r.Txns)
		r.CPUUsPerTxn = &cpu
	}
	return r, nil
}

// pgbenchArgs is a run of mode's script without vacuum that logs every
// transaction into logDir.
func pgbenchArgs(cfg config, up *upstream, t target, mode string, allowance int, logDir string) []string {
	args := append(append(connArgs(t.addr, t.user), "-n"), modeArgs(cfg, mode, allowance)...)
	return append(args, "-l", "--log-prefix", filepath.Join(logDir, "tx"),
		up.db)
}

// refusedRE is the line of a pgbench client that pgveil's error aborted:
// which command of the script, and the error.
var refusedRE = regexp.MustCompile(`(?m)aborted in (command \d+) query \d+: ERROR:  (pgveil: .*)$`)

// refusal is pgveil's error in out when it aborted pgbench's clients
// ("in command N: pgveil: ..."), else "".
func refusal(out string) string {
	m := refusedRE.FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return "in " + m[1] + ": " + m[2]
}

var (
	txnsRE   = regexp.MustCompile(`(?m)^number of transactions actually processed: (\d+)`)
	failedRE = regexp.MustCompile(`(?m)^number of failed transactions: (\d+)`)
	avgRE    = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	// With -C the line says "(including reconnection times)".
	tpsRE = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \((?:without initial connection|including reconnection) times?\)`)
)

// parseOutput reads transactions, failures, average latency and TPS from
// pgbench's summary.
func parseOutput(out string) (result, error) {
	var r result
	var err error
	if r.Txns, err = matchInt(txnsRE, out); err != nil {
		return r, err
	}
	if r.Txns == 0 {
		return r, errNoTransactions
	}
	if failedRE.MatchString(out) {
		r.Failed, _ = matchInt(failedRE, out)
	}
	if r.AvgMs, err = matchFloat(avgRE, out); err != nil {
		return r, err
	}
	r.TPS, err = matchFloat(tpsRE, out)
	return r, err
}

// matchFloat returns re's first group in out as a float.
func matchFloat(re *regexp.Regexp, out string) (float64, error) {
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench output lacks %q", re.String())
	}
	return strconv.ParseFloat(m[1], 64)
}

// matchInt returns re's first group in out as an integer.
func matchInt(re *regexp.Regexp, out string) (int64, error) {
	m := re.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("pgbench output lacks %q", re.String())
	}
	return strconv.ParseInt(m[1], 10, 64)
}

// p99FromLogs returns the 99th percentile latency in ms over every
// per-transaction log in dir. The third column of a log line is the
// transaction's latency in µs ("failed" or "skipped" lines are ignored).
func p99FromLogs(dir string) (float64, error) {
	files, err := filepath.Glob(filepath.Join(dir, "tx.*"))
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("no pgbench transaction logs in %s", dir)
	}
	var lat []float64
	for _, f := range files {
		if lat, err = readLatencies(f, lat); err != nil {
			return 0, err
		}
	}
	if len(lat) == 0 {
		return 0, errors.New("pgbench transaction logs hold no latencies")
	}
	return percentile(lat, 99) / 1000, nil
}

// readLatencies appends the latency column of the log at path to lat.
func readLatencies(path string, lat []float64) ([]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return lat, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		if us, err := strconv.ParseFloat(fields[2], 64); err == nil {
			lat = append(lat, us)
		}
	}
	return lat, sc.Err()
}

// percentile is the nearest-rank p-th percentile of values (sorted in
// place).
func percentile(values []float64, p float64) float64 {
	slices.Sort(values)
	rank := int(math.Ceil(p / 100 * float64(len(values))))
	return values[max(rank, 1)-1]
}

// relayTicks returns the CPU ticks used so far by t's relay, 0 if none.
func relayTicks(t target) (int64, error) {
	if t.pid == nil {
		return 0, nil
	}
	return procTicks(t.pid())
}

// procTicks returns utime+stime of pid from /proc/PID/stat (fields 14 and
// 15, in clock ticks), counting all the process's threads.
func procTicks(pid int) (int64, error) {
	stat, err := readProc(pid, "stat", "relay CPU time")
	if err != nil {
		return 0, err
	}
	return parseStatTicks(stat)
}

// readProc reads /proc/PID/name; what names the figure in an error.
func readProc(pid int, name, what string) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, name))
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return string(data), nil
}

// parseStatTicks sums utime and stime in a /proc/PID/stat line. The command
// name (field 2) may hold spaces and parentheses, so fields are counted
// from the last ')': the field after it is field 3.
func parseStatTicks(stat string) (int64, error) {
	end := strings.LastIndexByte(stat, ')')
	fields := strings.Fields(stat[end+1:])
	if end < 0 || len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat line %q", stat)
	}
	utime, err1 := strconv.ParseInt(fields[14-3], 10, 64)
	stime, err2 := strconv.ParseInt(fields[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc stat times: %w", err)
	}
	return utime + stime, nil
}

// cpuPerTxn converts a tick count into µs of CPU per transaction.
func cpuPerTxn(ticks, txns int64) float64 {
	return float64(ticks) / float64(clockTicks()) * 1e6 / float64(txns)
}

// clockTicks is the kernel's USER_HZ, the unit of /proc stat times, read
// once via `getconf CLK_TCK` (sysconf(_SC_CLK_TCK)). It falls back to 100,
// the value on every mainstream Linux architecture.
var clockTicks = sync.OnceValue(func() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	hz, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || hz <= 0 {
		return 100
	}
	return hz
})
