# pgveil: build, test and benchmark.
# Needs Go, gcc (cgo for the SQL parser) and PostgreSQL server binaries
# (Debian: apt-get install -y postgresql; PgBouncer for `make bench`: pgbouncer;
# for the tests also haproxy, default-jdk-headless and libpostgresql-jdbc-java;
# for `make deb` dpkg-dev, and for its tests lintian, systemd and prometheus).

GO        ?= go
BIN       := bin/pgveil
TESTFLAGS ?= -race -count=1 -timeout 20m
# What pgveil version prints; empty outside a git checkout.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build test vet bench demo fuzz deb clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pgveil

vet:
	$(GO) vet ./...

# The test command CI runs: every package against a throwaway PostgreSQL.
test: vet
	$(GO) test $(TESTFLAGS) ./...

# pgbench -S through pgveil, PgBouncer (when installed) and directly, side by side.
bench: build
	$(GO) run ./bench --pgveil $(BIN) --masked-user pgveil_masked $(BENCHFLAGS)

demo: build
	$(BIN) demo

fuzz:
	$(GO) test ./masking -run '^$$' -fuzz FuzzCacheKey -fuzztime 30s
	$(GO) test ./masking -run '^$$' -fuzz FuzzMaskDataRow -fuzztime 30s

# bin/pgveil_<version>_<arch>.deb: the binary, the systemd unit, the example
# /etc/pgveil/pgveil.yaml, the dashboard and the alerts (packaging/deb/build.sh;
# needs dpkg-dev). DEBOUT sets the directory, DEB_VERSION the version.
DEBOUT ?= bin
deb:
	GO=$(GO) OUT=$(DEBOUT) packaging/deb/build.sh

clean:
	rm -rf bin
