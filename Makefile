# IoV message platform — developer entry points. `make` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO        ?= go
BIN       := $(CURDIR)/bin
MODULES   := kit proto schemas services/exhook-producer services/sample-consumer services/downlink tools/devkit tools/schemactl tools/monitoring
SERVICES  := exhook-producer sample-consumer downlink
TOOLS     := devstack loadgen bench compare demo floor
PRODUCER_CMDS := exhook-reload
GOTEST    := $(GO) test -race -count=1
FUZZTIME  ?= 10s
BENCH_ROUNDS ?= 3
PEER_BIN  ?=

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install what the build and tests need: Debian packages (root), the Python venv, the real schema registry
	@tools/install-deps.sh
	@tools/baseline-python/install-deps.sh >/dev/null
	@tools/registry/build.sh >/dev/null

.PHONY: build
build: ## Build every service and dev tool into bin/
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do echo "build $$s"; (cd services/$$s && $(GO) build -o $(BIN)/$$s .) || exit 1; done
	@for t in $(TOOLS); do echo "build $$t"; (cd tools/devkit && $(GO) build -o $(BIN)/$$t ./cmd/$$t) || exit 1; done
	@for c in $(PRODUCER_CMDS); do echo "build $$c"; (cd services/exhook-producer && $(GO) build -o $(BIN)/$$c ./cmd/$$c) || exit 1; done

.PHONY: demo
demo: ## Build, then run uplink + downlink on the embedded defaults and check the measured figures (VEHICLES=200 MESSAGES=10)
	@tools/demo.sh

.PHONY: cli-check
cli-check: build ## Every binary's --help, --check-config (secrets masked) and one-pass config errors
	@tools/cli-check.sh

.PHONY: bench
bench: build ## Floor (do-nothing ExHook server) vs our producer per mode, server pinned to CPU 1, BENCH_ROUNDS=3 alternated rounds: median CPU/msg ratios, fixed-rate in-server latency, peak RSS with 10k vehicles in flight (PEER_BIN=path: the sarama peer too, tools/devkit/peer)
	@taskset -c 0 $(BIN)/bench --producer $(BIN)/exhook-producer --floor $(BIN)/floor --server-cpus 1 --rounds $(BENCH_ROUNDS) \
		$(if $(PEER_BIN),--peer 'sarama=tools/devkit/peer/run.sh $(abspath $(PEER_BIN)) {port} {bootstrap} {topic}')
	@cd services/exhook-producer && $(GO) test -run '^$$' -bench . -benchmem ./internal/...

.PHONY: compare
compare: build ## Python exhook bridge vs ours, same load: msg/s, p50/p99, peak RSS, ratios (SYNC=1 adds sync mode)
	@py=$$(tools/baseline-python/install-deps.sh) && \
		$(BIN)/compare --producer $(BIN)/exhook-producer --python "$$py" --bridge tools/baseline-python/exhook_bridge.py $(if $(SYNC),--sync)

.PHONY: test
test: deps lint proto-check test-go cli-check test-kafka chart-test ## Everything CI runs: lint, generated-code check, Go tests with -race, the binaries' command line, real-Kafka tests, chart tests
	@echo "make test: all checks passed"

.PHONY: test-go
test-go: prometheus-tools ## Go tests with -race in every module (tools/monitoring needs prometheus and promtool)
	@set -e; export COMPARE_PYTHON="$$(tools/baseline-python/install-deps.sh --print-python)"; \
		for m in $(MODULES); do echo "== go test $$m"; (cd $$m && $(GOTEST) ./...); done

.PHONY: lint
lint: ## gofmt and go vet in every module
	@out=$$(gofmt -l $(MODULES) $(CHARTTEST)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@cd $(CHARTTEST) && GOWORK=off $(GO) vet ./...
	@echo "lint ok"

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 10s)
	@set -e; for spec in \
		"schemas/wire FuzzSplit" \
		"schemas/serde FuzzDecode" \
		"schemas/serde FuzzSegmentedEncodingMatchesHamba" \
		"services/exhook-producer/internal/route FuzzMatchFilter" \
		"services/exhook-producer/internal/hook FuzzV3Publish" \
		"services/exhook-producer/internal/hook FuzzMessagePublishRequest" \
		"services/sample-consumer/internal/consume FuzzDecode" \
		"services/downlink/internal/command FuzzTemplate" \
		"tools/schemactl/internal/config FuzzParse" \
		"services/exhook-producer/internal/route FuzzCovers" \
		"services/exhook-producer/internal/h2streams FuzzScan" \
		"tools/devkit/emqxsim FuzzScan" \
		"services/exhook-producer/internal/emqxapi FuzzParseBootstrap"; do \
		set -- $$spec; \
		echo "== fuzz $$2 ($$1)"; \
		(cd $$1 && $(GO) test -run '^$$' -fuzz "^$$2$$" -fuzztime $(FUZZTIME) .); \
	done

.PHONY: proto
proto: ## Regenerate the ExHook Go code from proto/
	@bash proto/gen.sh

.PHONY: proto-check
proto-check: ## Fail if the committed generated code (ExHook v2 and v3) is stale or breaks the wire contract tests
	@bash proto/gen.sh --check
	@cd proto && $(GO) test -count=1 ./...

# Chart tests: a Go module outside go.work (Helm's Kubernetes libraries stay out of the
# services' builds). RUN=<regexp> picks tests, e.g. make chart-test RUN=TestHAProxyBehaviour.
CHARTTEST := tools/charttest
.PHONY: chart-tools
chart-tools: ## Build kubectl-validate and helm-unittest once into a cache outside bin/
	@tools/chart-tools.sh >/dev/null

# Monitoring (tools/monitoring, charts/MONITORING.md): prometheus and promtool are built once
# from github.com/prometheus/prometheus into a cache outside bin/ (many minutes the first time).
.PHONY: prometheus-tools
prometheus-tools: ## Build prometheus and promtool once into a cache outside bin/ (shows progress)
	@tools/prometheus-tools.sh >/dev/null

.PHONY: monitoring-test
monitoring-test: prometheus-tools ## promtool check/test rules, PrometheusRule vs CRD, real Prometheus end-to-end, metric names, dashboard goldens
	@cd tools/monitoring && $(GOTEST) ./...

.PHONY: dashboards
dashboards: ## Regenerate the Grafana dashboard JSON in charts/iov-platform/files/dashboards
	@cd tools/monitoring && $(GO) test -count=1 -run TestGolden ./dashboards -update

.PHONY: chart-test
chart-test: chart-tools ## Full offline render with the upstream charts: lint, helm-unittest, kubectl-validate, haproxy, goldens
	@cd $(CHARTTEST) && GOWORK=off $(GO) test -count=1 $(if $(RUN),-run '$(RUN)') ./...

.PHONY: chart-golden
chart-golden: chart-tools ## Rewrite the chart goldens and the infra/ reference files
	@cd $(CHARTTEST) && GOWORK=off $(GO) test -count=1 -run 'TestGolden|TestInfraReference' ./... -update

# Real Apache Kafka (KRaft) on loopback: tools/kafka/pom.xml pins the broker, Maven resolves it into
# ~/.cache/iov-kafka, tools/devkit/kafkacluster formats and runs the nodes.
KAFKA_NODES ?= 1
KAFKA_DIR   ?= $(CURDIR)/.cache/kafka
.PHONY: kafka-up
kafka-up: ## Start a real Kafka (KRaft, KAFKA_NODES=1|3) on free loopback ports; prints the bootstrap list
	@cd tools/devkit && $(GO) run ./cmd/kafkacluster up --nodes $(KAFKA_NODES) --dir $(KAFKA_DIR)

# The tests that need a real Kafka (each starts and stops its own cluster; IOV_REAL_KAFKA=1
# enables them, elsewhere they skip): the harness, the end-to-end tests' real-kafka runs, the
# 3-broker fault tests and SASL/SCRAM over TLS.
KAFKA_E2E := ^(TestEveryMessageArrivesOnceInOrder|TestClientEventsGoToStatusTopic|TestBadPayloadGoesToDeadLetterTopic|TestRecordsHandledAsWrittenInOrder|TestCommandRoundTrip|TestSASLSCRAMOverTLS)$$/^(real-kafka|right_password|wrong_password)$$
.PHONY: test-kafka
test-kafka: ## Real-Kafka tests: harness, end-to-end, broker faults (3 nodes), SASL/SCRAM over TLS, the chart's ACLs
	@set -e; export IOV_REAL_KAFKA=1; \
	echo "== real kafka: harness"; (cd tools/devkit && $(GOTEST) -timeout 15m -run '^TestThreeNodeFaults$$' ./kafkacluster/); \
	for m in services/exhook-producer services/sample-consumer services/downlink; do \
		echo "== real kafka: end to end and security ($$m)"; \
		(cd $$m && $(GOTEST) -timeout 15m -run '$(KAFKA_E2E)' ./internal/app/); \
	done; \
	echo "== real kafka: the chart's KafkaUser ACLs"; (cd $(CHARTTEST) && GOWORK=off $(GO) test -count=1 -timeout 10m -run '^TestKafkaACLsOnRealBroker$$' .); \
	echo "== real kafka: broker faults"; (cd services/exhook-producer && $(GOTEST) -timeout 30m -run '^TestBrokerFaults$$' ./internal/app/)

.PHONY: kafka-down
kafka-down: ## Stop the Kafka started by kafka-up
	@cd tools/devkit && $(GO) run ./cmd/kafkacluster down --dir $(KAFKA_DIR)

HELM ?= helm
.PHONY: chart-deps
chart-deps: ## Download the umbrella chart's third-party dependencies (needs network; Strimzi comes from oci://quay.io/strimzi-helm)
	@$(HELM) repo add emqx https://repos.emqx.io/charts --force-update
	@$(HELM) repo add haproxytech https://haproxytech.github.io/helm-charts --force-update
	@$(HELM) dependency build charts/iov-platform

.PHONY: registry
registry: ## Run the real schema registry of the tests (Apicurio) on 127.0.0.1:8081, Confluent API /apis/ccompat/v7
	@java -Xmx384m -XX:+UseSerialGC -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port=8081 -jar "$$(tools/registry/build.sh)"

# Schema workflow (schemactl; see schemas/README.md). REGISTRY=http://host:8081 replaces the
# registry of schemas/subjects.yaml.
.PHONY: schema-check schema-register
schema-check: ## Check new schema versions against a live registry (REGISTRY=url)
	@$(GO) run ./tools/schemactl $(if $(REGISTRY),--registry $(REGISTRY)) check
schema-register: ## Set per-subject compatibility and register new schema versions (REGISTRY=url)
	@$(GO) run ./tools/schemactl $(if $(REGISTRY),--registry $(REGISTRY)) register

.PHONY: tidy
tidy: ## go mod tidy in every module
	@set -e; for m in $(MODULES) tools $(CHARTTEST); do (cd $$m && GOWORK=off $(GO) mod tidy); done

.PHONY: clean
clean: ## Remove build outputs
	rm -rf $(BIN)
