# pgveil: build, test and benchmark.
# Needs Go, gcc (cgo for the SQL parser) and PostgreSQL server binaries
# (Debian: apt-get install -y postgresql; PgBouncer for `make bench`: pgbouncer;
# for the tests also haproxy, default-jdk-headless and libpostgresql-jdbc-java).

GO        ?= go
BIN       := bin/pgveil
TESTFLAGS ?= -race -count=1 -timeout 20m
# What pgveil version prints; empty outside a git checkout.
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT    ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

.PHONY: all build test vet bench demo fuzz soak clean

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

clean:
	rm -rf bin
