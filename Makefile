# triad — `make demo` to try it, `make test` to check it. `make` lists targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO          ?= go
BIN         := bin/triad
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X github.com/triad-dev/triad/cmd/internal/cli.Version=$(VERSION)
STATICCHECK := bin/staticcheck
STATICCHECK_VERSION := v0.8.2
# The demo's bootstrap admin token (git-ignored, created once, mode 0600).
ADMIN_TOKEN_FILE := .triad/admin-token

# Demo data: loadgen profiles written through the pipeline (and archived).
DEMO_ROWS    ?= 100000
DEMO_ARCHIVE := .triad/archive
# Rows for the store benchmarks (make bench).
BENCH_ROWS   ?= 1000000
# Orders for the demo (make demo).
DEMO_ORDERS ?= 20000
# Profiles for the sweep benchmark (make bench-sweep).
BENCH_SWEEP_ROWS ?= 1000000
# Repair log entries for the repair-log page benchmark (make bench-log).
BENCH_LOG_ROWS ?= 10000000
# Profiles and wrk duration for the read path benchmark (make bench-read).
BENCH_READ_ROWS ?= 100000
BENCH_READ_DURATION ?= 10s

# The cross-language sample services (trace/testdata).
TRACE_SVC := trace/testdata
PY_STAMP := $(TRACE_SVC)/pysvc/.venv/.installed
SCALA_JAR := $(TRACE_SVC)/scalasvc/target/price-scala-1.0.0.jar

.PHONY: help build trace-services e2e-deps webhook-verifier stack-up stack-down stack-status demo demo-data demo-check test test-cluster-lane test-short bench bench-read bench-sweep bench-log lint fmt clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/triad
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/triad

stack-up: build ## Start (or repair) the local Postgres, Redis, etcd and Elasticsearch; installs what is missing
	$(BIN) stack up

stack-down: build ## Stop the local stack (data stays in the stack dir)
	$(BIN) stack down

stack-status: build ## Show the local stack's servers
	$(BIN) stack status

$(ADMIN_TOKEN_FILE):
	@mkdir -p $(dir $@)
	@umask 077 && head -c 32 /dev/urandom | base64 | tr -d '/+=\n' > $@
	@echo "created bootstrap admin token in $@"

demo-data: stack-up ## Load deterministic demo profiles (DEMO_ROWS, default 100000) and orders (DEMO_ORDERS, 20000) into Postgres, Redis and Elasticsearch (idempotent)
	$(BIN) migrate up
	TRIAD_ARCHIVE_DIR=$(DEMO_ARCHIVE) $(BIN) loadgen --count $(DEMO_ROWS) --seed 1 --ingest
	$(BIN) loadgen --entity order --count $(DEMO_ORDERS) --seed 1 --ingest

$(PY_STAMP): $(TRACE_SVC)/pysvc/requirements.txt
	test -x $(TRACE_SVC)/pysvc/.venv/bin/python || python3 -m venv $(TRACE_SVC)/pysvc/.venv
	$(TRACE_SVC)/pysvc/.venv/bin/pip install -q --disable-pip-version-check -r $<
	touch $@

$(SCALA_JAR): $(TRACE_SVC)/scalasvc/pom.xml $(wildcard $(TRACE_SVC)/scalasvc/src/main/scala/triad/*.scala)
	rm -rf $(TRACE_SVC)/scalasvc/target/lib
	mvn -q -B -f $(TRACE_SVC)/scalasvc/pom.xml package

bin/gosvc: $(TRACE_SVC)/gosvc/main.go $(TRACE_SVC)/gosvc/go.mod $(TRACE_SVC)/gosvc/go.sum
	cd $(TRACE_SVC)/gosvc && $(GO) build -o ../../../bin/gosvc .

E2E_STAMP := web/e2e/node_modules/.installed

# The Standard Webhooks reference library (Python, PyPI), which a test
# verifies triad's deliveries with.
SW_DIR   := repair/alert/testdata/standardwebhooks
SW_STAMP := $(SW_DIR)/.venv/.installed

$(SW_STAMP): $(SW_DIR)/requirements.txt
	test -x $(SW_DIR)/.venv/bin/python || python3 -m venv $(SW_DIR)/.venv
	$(SW_DIR)/.venv/bin/pip install -q --disable-pip-version-check -r $<
	touch $@

webhook-verifier: $(SW_STAMP) ## Install the Standard Webhooks library the webhook test verifies deliveries with (a venv)

$(E2E_STAMP): web/e2e/package.json web/e2e/package-lock.json
	test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	cd web/e2e && npm ci --no-audit --no-fund --silent
	touch $@

e2e-deps: $(E2E_STAMP) ## Install the browser tests' needs: Debian chromium and npm playwright-core (no browser download)

trace-services: $(PY_STAMP) $(SCALA_JAR) bin/gosvc ## Build the Go, Python (pip venv) and Scala (Maven) sample services (cross-language trace test, demo)

# The demo's buggy service (drifts records through the stores' own APIs)
# and its webhook receiver (its own page on :8384).
bin/buggysvc: $(wildcard repair/testdata/buggysvc/*.go) go.mod go.sum
	$(GO) build -o $@ ./repair/testdata/buggysvc

bin/demo-receiver: $(wildcard repair/alert/testdata/receiver/*.go) $(wildcard repair/alert/*.go) go.mod go.sum
	$(GO) build -o $@ ./repair/alert/testdata/receiver

DEMO_CONFIG := cmd/triad/demo.yaml

demo: stack-up $(ADMIN_TOKEN_FILE) demo-data trace-services bin/buggysvc bin/demo-receiver ## Stack up, load demo data, serve the dashboard on http://127.0.0.1:8383 with a buggy service, a sweep every minute and a webhook receiver
	@echo
	@echo "  dashboard:    http://127.0.0.1:8383/   (log in with the admin token below)"
	@echo "  admin token:  $(ADMIN_TOKEN_FILE)   (curl -H \"Authorization: Bearer \$$(cat $(ADMIN_TOKEN_FILE))\" http://127.0.0.1:8383/api/v1/whoami)"
	@echo "  receiver:     http://127.0.0.1:8384/   (what the alert webhook got)"
	@echo "  stop with Ctrl-C; 'make stack-down' stops the servers"
	@echo
	@echo "  traces:       Go → Python → Scala sample services send a trace every 5s; bin/triad trace search"
	@echo "  drift:        bin/buggysvc drifts a few profiles every 10s for 1 min, then rests 2.5 min (.triad/buggysvc.json)"
	$(TRACE_SVC)/demo.sh & d1=$$!; bin/buggysvc --token-file $(ADMIN_TOKEN_FILE) & d2=$$!; \
	bin/demo-receiver --token-file $(ADMIN_TOKEN_FILE) & d3=$$!; trap 'kill $$d1 $$d2 $$d3 2>/dev/null' EXIT INT TERM; \
	TRIAD_CONFIG=$(DEMO_CONFIG) TRIAD_ADMIN_TOKEN_FILE=$(ADMIN_TOKEN_FILE) TRIAD_ARCHIVE_DIR=$(DEMO_ARCHIVE) $(BIN) serve

# The cluster lane: the integration tests of these packages run again on the
# stack's cluster profile (a Redis Cluster of 3 masters and 3 replicas, 3
# Elasticsearch nodes, 3 etcd members; TRIAD_STACK_PROFILE=cluster points
# stacktest at it), with the indices triad creates given 2 shards and a
# replica. Not run again there (CLUSTER_LANE_NOT): the tests whose subject is
# one server's own fault (they stop, hang or restart a private single server
# of their own), the cluster tests (they start private clusters of their own
# to break), and the span tests (spans live in Postgres alone, the same
# server in both lanes).
CLUSTER_LANE_PKGS := ./ingest/... ./repair/... ./cmd/internal/app ./cmd/internal/cli
CLUSTER_LANE_NOT := TestStoreUnreachableAlert|TestReadyFollowsADependency|TestHungStoresDegradeOnePath|TestRedisDataLossIsDetectedAndRewarmed|TestElasticsearchHungMidIngestCatchesUp|TestRedisHungMidIngestCatchesUp|TestElasticsearchStoppedMidIngestCatchesUp|TestRedisStoppedMidIngestCatchesUp|TestRestartWhileLeadershipChangesHands|TestNoTwoLeadersAcrossEtcdRestarts|TestHungRedisRangeBacksOff|TestPostgresUnreachable|TestServingWithoutEtcd|TestThreeReplicasOnAThreeMemberEtcd|TestElasticsearchNodeLostWithReplicas|TestProfilesOnARedisCluster|TestRedisClusterReshardMidIngest|TestDatasetVersionsOnARedisCluster|TestReplicasReadEachOthersWritesOnARedisCluster|TestCrossLanguageTrace|TestOwnSpans|TestJVMLanguages

test: stack-up trace-services e2e-deps webhook-verifier ## Stack up, build the sample services, then every test against the real servers (none skipped), the demo's check, then the cluster lane
	@echo "== smoke test through the real clients =="
	$(GO) test -count=1 -run '^TestSmoke$$' -v ./cmd/internal/clients | grep -E 'smoke:|^(--- |ok|FAIL|PASS)'
	@echo "== all tests =="
	$(GO) test -count=1 -timeout 20m ./...
	@$(MAKE) --no-print-directory demo-check
	@$(MAKE) --no-print-directory test-cluster-lane

# The demo's check: `make demo` runs untouched for DEMO_CHECK_SECONDS
# (counted from its start, data load included), then web/e2e/demo.mjs
# reads through the API what it shows and screenshots the Overview.
DEMO_CHECK_SECONDS ?= 300

demo-check: build e2e-deps ## Run `make demo` untouched for 5 minutes, then check through the API and Chromium that it told the story (make test runs it)
	@echo "== the demo, untouched for $(DEMO_CHECK_SECONDS) s, then checked =="
	@mkdir -p .triad && rm -f .triad/buggysvc.json
	setsid $(MAKE) --no-print-directory demo > .triad/demo.log 2>&1 & pid=$$!; \
	trap 'kill -- -$$pid 2>/dev/null; wait $$pid 2>/dev/null || true' EXIT; \
	sleep $(DEMO_CHECK_SECONDS); \
	cd web/e2e && TOKEN_FILE=../../$(ADMIN_TOKEN_FILE) REPORT=../../.triad/buggysvc.json ARTIFACTS=artifacts node demo.mjs \
		|| { echo "--- the demo's log (.triad/demo.log), last 60 lines:"; tail -60 ../../.triad/demo.log; exit 1; }

test-cluster-lane: build ## The cluster lane alone: cluster profile up, then the integration tests of CLUSTER_LANE_PKGS on it
	@echo "== the cluster lane: $(CLUSTER_LANE_PKGS) on a Redis Cluster, 3 Elasticsearch nodes, 3 etcd members =="
	$(BIN) stack up --profile cluster
	TRIAD_STACK_PROFILE=cluster TRIAD_PROFILE_INDEX_SHARDS=2 TRIAD_PROFILE_INDEX_REPLICAS=1 \
		$(GO) test -count=1 -timeout 20m -skip '^($(CLUSTER_LANE_NOT))$$' $(CLUSTER_LANE_PKGS)

test-short: ## Unit tests only (no servers needed)
	$(GO) test -short -count=1 ./...

bench: stack-up ## Benchmarks: parser, archive vs dd, ingest end to end vs raw store rates (BENCH_ROWS, default 1000000)
	@echo "== parser (per line, -benchmem) =="
	$(GO) test -run '^$$' -bench 'Decode' -benchmem ./ingest
	@echo "== archive: dd baseline to the same disk, then ChunkedWriter and verify =="
	@mkdir -p /var/tmp/triad-bench && dd if=/dev/zero of=/var/tmp/triad-bench/dd.bin bs=1M count=256 conv=fdatasync 2>&1 | tail -1; rm -f /var/tmp/triad-bench/dd.bin
	TRIAD_BENCH_DIR=/var/tmp/triad-bench $(GO) test -run '^$$' -bench 'WriteFile|Verify' -benchtime 5x ./ingest/archive
	@echo "== stores: $(BENCH_ROWS) rows end to end, the Postgres stage, and raw rates of the same rows =="
	TRIAD_BENCH_ROWS=$(BENCH_ROWS) $(GO) test -run '^$$' -bench 'Ingest|Raw' -benchtime 1x -timeout 60m ./ingest | grep -E '^(Benchmark|ok|FAIL)|rows in'

bench-sweep: stack-up ## Sweeps: naive full compare vs segment digests on consistent data, then 0.1% drift: time, recall, peak RSS (BENCH_SWEEP_ROWS, default 1000000)
	TRIAD_BENCH_SWEEP_ROWS=$(BENCH_SWEEP_ROWS) $(GO) test -run '^$$' -bench 'Sweep' -benchtime 1x -timeout 120m ./repair/sweep 2>&1 | grep -vE '^\s+handler.go|level=(INFO|DEBUG)'

bench-log: stack-up ## Repair-log page: p50/p95/p99 of GET /api/v1/repairs (first, next and filtered pages) over BENCH_LOG_ROWS generated entries (default 10M); TRIAD_BENCH_LOG_KEEP=1 keeps them
	TRIAD_BENCH_LOG_ROWS=$(BENCH_LOG_ROWS) $(GO) test -run '^$$' -bench 'RepairLogPage' -benchtime 1x -timeout 60m ./repair/postgres 2>&1 | grep -vE 'level=(INFO|DEBUG)'

bench-read: stack-up ## Read path: wrk at concurrency 64 per tier vs a no-op gin handler and redis-benchmark GET; unknown-ID share (BENCH_READ_ROWS, BENCH_READ_DURATION)
	@command -v wrk >/dev/null || { [ -n "$$(ls /var/lib/apt/lists 2>/dev/null | head -1)" ] || apt-get update -qq; apt-get install -y -qq wrk >/dev/null; }
	@command -v redis-benchmark >/dev/null || apt-get install -y -qq redis-tools >/dev/null
	TRIAD_BENCH_READ_ROWS=$(BENCH_READ_ROWS) TRIAD_BENCH_READ_DURATION=$(BENCH_READ_DURATION) $(GO) test -run '^$$' -bench 'ReadPath' -benchtime 1x -timeout 30m ./cmd/internal/cli 2>&1 | grep -vE '^\s+handler.go|level=(INFO|DEBUG)'
	$(GO) test -run '^$$' -bench 'CacheHit|UnknownID' -benchmem ./ingest/lookup

$(STATICCHECK):
	GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

lint: $(STATICCHECK) ## gofmt check, go vet, staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

fmt: ## Format the Go code
	gofmt -w $$(git ls-files '*.go')

clean: ## Remove build outputs (not the stack's data)
	rm -rf bin
