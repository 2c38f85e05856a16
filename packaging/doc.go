// Package packaging holds how pgveil reaches a machine: the Debian package
// (deb/) and, in its tests, the proof that what it ships works. It has no
// Go code of its own; the tests are the point.
//
// # The Debian package
//
// make deb runs deb/build.sh, which builds the binary (PIE, Debian's
// hardening flags for the cgo parser, -trimpath, the Debian version
// linked in as main.version so that pgveil --version names the package),
// stages a tree and packs it with dpkg-deb --root-owner-group: no
// debhelper, no fakeroot, no network beyond the Go module proxy. The
// version comes from git describe through deb/version.sh (0.0~git<date>.<sha>
// before the first tag); Depends comes from dpkg-shlibdeps (libc, for the
// C parser) plus adduser for the maintainer scripts.
//
// The package ships /usr/bin/pgveil, /etc/pgveil/pgveil.yaml (a conffile:
// a commented example that runs as a plain proxy), the unit
// /lib/systemd/system/pgveil.service, and under /usr/share/doc/pgveil the
// README, the copyright of every module compiled in, and examples/ with
// the Grafana dashboard and the Prometheus alerts of docs/.
//
// The unit runs pgveil serve as the system user pgveil, reloads on SIGHUP
// (ExecReload), restarts on failure, and is hardened: no capability at all
// (it listens above port 1024), a read-only system, no home, private /tmp
// and devices, a system-call filter. postinst creates the user and makes
// the configuration root:pgveil 0640 through dpkg-statoverride (it may hold
// admin_dsn's password); it never enables nor starts the service, which
// the DBA does after editing the file. Upgrades restart a running proxy.
//
// # What the tests prove
//
// deb_test.go builds the package once, the way make deb does, and checks
// its control fields and file list with dpkg-deb, runs lintian (no error,
// no warning), systemd-analyze verify and security on the unit, runs the
// packaged binary's --version and check --help, and runs it with the
// shipped example configuration as a plain proxy in front of a throwaway
// PostgreSQL, reload and stop included. alerts_test.go runs promtool on
// docs/prometheus-alerts.yaml: check rules, and test rules with
// testdata/alerts_test.yaml, where each alert fires on the series it is
// for. That every metric the dashboard and the alerts query is one pgveil
// serves is checked in cmd/pgveil (dashboard_test.go), which can start a
// proxy with its test schema.
package packaging
