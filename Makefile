# IoV message platform — developer entry points. `make` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
MODULES   := kit proto schemas services/exhook-producer services/sample-consumer services/downlink tools/devkit
SERVICES  := exhook-producer sample-consumer downlink
TOOLS     := devstack loadgen bench compare
GOTEST    := $(GO) test -race -count=1
FUZZTIME  ?= 10s

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install the system packages the build and tests need (Debian; needs root)
	@tools/install-deps.sh
	@tools/baseline-python/install-deps.sh

.PHONY: build
build: ## Build every service and dev tool into bin/
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do echo "build $$s"; (cd services/$$s && $(GO) build -o $(BIN)/$$s .) || exit 1; done
	@for t in $(TOOLS); do echo "build $$t"; (cd tools/devkit && $(GO) build -o $(BIN)/$$t ./cmd/$$t) || exit 1; done

.PHONY: demo
demo: build ## Run the whole uplink on the embedded default: in-process Kafka + registry, producer, consumer, EMQX-like load
	@tools/demo.sh

.PHONY: bench
bench: build ## Measure msg/s and p50/p99 hook latency, async and sync, 1k vehicles
	@$(BIN)/bench --producer $(BIN)/exhook-producer
	@cd services/exhook-producer && $(GO) test -run '^$$' -bench . -benchmem ./internal/...

.PHONY: compare
compare: build ## Python exhook bridge vs ours, same load: msg/s, p50/p99, peak RSS, ratios (SYNC=1 adds sync mode)
	@tools/baseline-python/install-deps.sh
	@$(BIN)/compare --producer $(BIN)/exhook-producer --bridge tools/baseline-python/exhook_bridge.py $(if $(SYNC),--sync)

.PHONY: test
test: deps lint proto-check test-go chart-test ## Everything CI runs: lint, generated-code check, Go tests with -race, chart tests
	@echo "make test: all checks passed"

.PHONY: test-go
test-go: ## Go tests with -race in every module
	@set -e; for m in $(MODULES); do echo "== go test $$m"; (cd $$m && $(GOTEST) ./...); done

.PHONY: lint
lint: ## gofmt and go vet in every module
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@echo "lint ok"

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 10s)
	@set -e; for spec in \
		"schemas/wire FuzzSplit" \
		"schemas/serde FuzzDecode" \
		"services/exhook-producer/internal/route FuzzMatchFilter" \
		"services/exhook-producer/internal/hook FuzzMessagePublishRequest" \
		"services/sample-consumer/internal/consume FuzzDecode" \
		"services/downlink/internal/command FuzzTemplate"; do \
		set -- $$spec; \
		echo "== fuzz $$2 ($$1)"; \
		(cd $$1 && $(GO) test -run '^$$' -fuzz "^$$2$$" -fuzztime $(FUZZTIME) .); \
	done

.PHONY: proto
proto: ## Regenerate the ExHook Go code from proto/
	@bash proto/gen.sh

.PHONY: proto-check
proto-check: ## Fail if the committed generated code differs from a fresh generation
	@bash proto/gen.sh --check

.PHONY: chart-test
chart-test: ## Helm lint, offline render, helm-unittest, kubectl-validate, haproxy -c, goldens
	@bash tools/chart-test.sh

.PHONY: chart-golden
chart-golden: ## Rewrite the chart goldens and the infra/ reference files
	@bash tools/chart-test.sh --update

HELM ?= helm
.PHONY: chart-deps
chart-deps: ## Download the umbrella chart's third-party dependencies (needs network)
	@$(HELM) repo add strimzi https://strimzi.io/charts/ --force-update
	@$(HELM) repo add emqx https://repos.emqx.io/charts --force-update
	@$(HELM) repo add haproxytech https://haproxytech.github.io/helm-charts --force-update
	@$(HELM) dependency build charts/iov-platform

.PHONY: tidy
tidy: ## go mod tidy in every module
	@set -e; for m in $(MODULES) tools; do (cd $$m && GOWORK=off $(GO) mod tidy); done

.PHONY: clean
clean: ## Remove build outputs
	rm -rf $(BIN)
