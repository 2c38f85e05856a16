# pgveil: build, test and benchmark.
# Needs Go, gcc (cgo for the SQL parser) and PostgreSQL server binaries
# (Debian: apt-get install -y postgresql, whose contrib extensions hstore and ltree
# pgx's test suite needs; pgbouncer for `make bench` and the PgBouncer tests; for
# the tests also haproxy, default-jdk-headless and libpostgresql-jdbc-java; for
# `make deb` dpkg-dev, and for its tests lintian, systemd and prometheus). The pgx
# suite test (internal/pgxsuite) downloads pgx's test dependencies with the go
# command on its first run.

GO        ?= go
BIN       := bin/pgveil
TESTFLAGS ?= -race -count=1 -timeout 20m
# What pgveil version prints; empty outside a git checkout.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build test vet bench demo fuzz pgx-suite deb soak clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pgveil

vet:
	$(GO) vet ./...

# The test command CI runs: every package against a throwaway PostgreSQL.
test: vet
	$(GO) test $(TESTFLAGS) ./...

# pgx's whole test suite, directly and through pgveil; make test runs its
# main packages (the root package, pgconn, pgxpool, stdlib).
pgx-suite:
	PGVEIL_PGX_PACKAGES=./... $(GO) test -count=1 -v -timeout 40m -run TestPgxSuite ./internal/pgxsuite

# Directly, through PgBouncer (when installed) and through pgveil, in one run:
# pgbench -S over both protocols, pgbench's read-write script, 200 clients,
# connections per second (pgbench -S -C, also both PgBouncer layouts), a bulk read
# of 1,000,000 rows and the relay's memory per idle session (1,000 sessions);
# BENCHFLAGS="--modes simple,bulk --seconds 2 --rounds 1" for a short run.
bench: build
	$(GO) run ./bench --pgveil $(BIN) --masked-user pgveil_masked $(BENCHFLAGS)

# Load and faults for SOAK (default 5m; SOAK=60s for a short run): the table of
# issue 14, exit 1 on a missed target. SOAKFLAGS: --idle N, --outage D, --workers N, --slow-mb N.
SOAK ?= 5m
soak: build
	$(GO) run ./soak --pgveil $(BIN) --duration $(SOAK) $(SOAKFLAGS)

demo: build
	$(BIN) demo

fuzz:
	$(GO) test ./masking -run '^$$' -fuzz FuzzCacheKey -fuzztime 30s
	$(GO) test ./masking -run '^$$' -fuzz FuzzMaskDataRow -fuzztime 30s
	for f in FuzzStartupPacket FuzzClientMessages FuzzMaskedSession FuzzAuthMessage FuzzLiveSession; do \
		$(GO) test ./proxy -run '^$$' -fuzz "^$$f$$" -fuzztime 30s -parallel 1 || exit 1; done

# bin/pgveil_<version>_<arch>.deb: the binary, the systemd unit, the example
# /etc/pgveil/pgveil.yaml, the dashboard and the alerts (packaging/deb/build.sh;
# needs dpkg-dev). DEBOUT sets the directory, DEB_VERSION the version.
DEBOUT ?= bin
deb:
	GO=$(GO) OUT=$(DEBOUT) packaging/deb/build.sh

clean:
	rm -rf bin
