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

.PHONY: help build stack-up stack-down stack-status demo test test-short lint fmt clean

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

demo: stack-up $(ADMIN_TOKEN_FILE) ## Stack up, serve the dashboard on http://127.0.0.1:8383 (serve applies migrations)
	@echo
	@echo "  dashboard:    http://127.0.0.1:8383/"
	@echo "  admin token:  $(ADMIN_TOKEN_FILE)   (curl -H \"Authorization: Bearer \$$(cat $(ADMIN_TOKEN_FILE))\" http://127.0.0.1:8383/api/v1/whoami)"
	@echo "  stop with Ctrl-C; 'make stack-down' stops the servers"
	@echo
	TRIAD_ADMIN_TOKEN_FILE=$(ADMIN_TOKEN_FILE) $(BIN) serve

test: stack-up ## Stack up, then every test against the real servers (none skipped)
	@echo "== smoke test through the real clients =="
	$(GO) test -count=1 -run '^TestSmoke$$' -v ./cmd/internal/clients | grep -E 'smoke:|^(--- |ok|FAIL|PASS)'
	@echo "== all tests =="
	$(GO) test -count=1 -timeout 20m ./...

test-short: ## Unit tests only (no servers needed)
	$(GO) test -short -count=1 ./...

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
