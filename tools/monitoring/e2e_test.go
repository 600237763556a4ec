package monitoring

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/readiness"
	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/monitoring/dashboards"
)

const (
	topicTelemetry  = "iov.vehicle.telemetry"
	topicEvents     = "iov.vehicle.events"
	topicRaw        = "iov.vehicle.raw"
	topicStatus     = "iov.vehicle.status"
	topicDeadLetter = "iov.deadletter"
	topicConsumerDL = "iov.consumer.deadletter"
	topicCommands   = "iov.vehicle.commands"
	topicCmdStatus  = "iov.vehicle.command-status"
)

// TestPrometheusEndToEnd runs a real Prometheus against the real services: the
// exhook-producer, the sample consumer, the downlink and the ExHook status exporter
// (exhook-reload -serve; binaries built from this repository) on the embedded Kafka +
// schema registry (tools/devkit/stack), with EMQX's side (ExHook client and REST API)
// played by emqxsim. Prometheus scrapes them on loopback and loads the chart's rule
// file (every `for` shortened to 2s so the test stays short; the expressions are unchanged).
//
//   - every metric name in the dashboards' queries and the rules' expressions (parsed by
//     Prometheus itself, /api/v1/parse_query) is one the services export after some
//     traffic, or one of EMQX's / Kafka Exporter's documented metrics
//     (testdata/external-metrics.txt);
//   - every rule evaluates (health ok) and no alert fires while everything is healthy;
//   - with Kafka stopped, IoVKafkaProducerCannotDeliver fires.
func TestPrometheusEndToEnd(t *testing.T) {
	prometheusBin := promTool(t, "prometheus")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()

	st, err := stack.Start(stack.Options{Partitions: 3, Topics: []string{topicTelemetry, topicEvents, topicRaw,
		topicStatus, topicDeadLetter, topicConsumerDL, topicCommands, topicCmdStatus}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close) // runs after the services' cleanups: they stop first
	bins := buildServices(t, dir, "exhook-producer", "sample-consumer", "downlink")

	grpcAddr := freeAddr(t)
	producer := startService(ctx, t, bins["exhook-producer"], fmt.Sprintf(`
grpc: {listenAddress: %q}
http: {listenAddress: %%q}
log: {level: warn, format: text}
kafka: {bootstrapServers: %q, unreachableAfter: 2s, properties: {linger.ms: "1"}}
registry: {url: %q}
spool: {dir: %q, maxBytes: 100000000, whenFull: reject}
shutdown: {drainTimeout: 2s}
hooks: {scope: ["vehicles/#"]}
topics: {status: %s, deadLetter: %s}
routes:
  - {name: telemetry, filter: "vehicles/+/telemetry", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: async}
  - {name: events, filter: "vehicles/+/events/#", kafkaTopic: %s, key: {from: topic-segment, segment: 1}, payload: json, delivery: sync}
  - {name: raw, filter: "vehicles/+/raw", kafkaTopic: %s, key: {from: clientid}, payload: bytes, delivery: spool}
commands: {enabled: true, topicFilter: "vehicles/+/commands/+", responseFilter: "vehicles/+/commands/+/response", vehicleSegment: 1, commandSegment: 3, statusTopic: %s}
`, grpcAddr, st.KafkaBootstrap(), st.RegistryURL(), filepath.Join(dir, "spool"), topicStatus, topicDeadLetter,
		topicTelemetry, topicEvents, topicRaw, topicCmdStatus))

	broker, err := emqxsim.StartBroker(emqxsim.BrokerOptions{HookAddr: grpcAddr, LoadTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = broker.Close() })
	status := startStatusExporter(ctx, t, dir, broker)

	consumer := startService(ctx, t, bins["sample-consumer"], fmt.Sprintf(`
http: {listenAddress: %%q}
log: {level: warn, format: text}
kafka: {bootstrapServers: %q, groupId: iov-sample-consumer, topics: [%s, %s], deadLetterTopic: %s, properties: {}}
registry: {url: %q}
handler: {maxAttempts: 2}
`, st.KafkaBootstrap(), topicTelemetry, topicEvents, topicConsumerDL, st.RegistryURL()))

	downlink := startService(ctx, t, bins["downlink"], fmt.Sprintf(`
http: {listenAddress: %%q}
log: {level: warn, format: text}
kafka: {bootstrapServers: %q, groupId: iov-downlink, commandsTopic: %s, statusTopic: %s, deadLetterTopic: %s, properties: {}}
registry: {url: %q, autoRegister: true}
mqtt: {brokerUrl: %q, clientId: iov-downlink-test, commandTopic: "vehicles/{vehicle_id}/commands/{command_id}", responseTopic: "vehicles/{vehicle_id}/commands/{command_id}/response", publishTimeout: 5s, keepAlive: 30s, connectTimeout: 5s, retry: {initialBackoff: 200ms, maxBackoff: 2s}}
shutdown: {drainTimeout: 2s}
`, st.KafkaBootstrap(), topicCommands, topicCmdStatus, topicDeadLetter, st.RegistryURL(), broker.URL()))

	drive(ctx, t, st, grpcAddr)

	// Every metric the dashboards and rules query is exported (or documented external).
	targets := map[string]string{"exhook-producer": producer, "sample-consumer": consumer, "downlink": downlink, "exhook-status": status}
	promAddr := startPrometheus(ctx, t, prometheusBin, dir, targets)
	t.Run("queries use exported metrics", func(t *testing.T) { checkMetricNames(ctx, t, promAddr, targets) })

	// Every rule evaluates; nothing fires while healthy.
	t.Run("rules healthy and silent", func(t *testing.T) {
		waitFor(ctx, t, "every rule evaluated with health ok and every target up", func() (bool, string) {
			return rulesHealthy(promAddr, countRules(t), len(targets))
		})
		if firing := alerts(t, promAddr, "firing"); len(firing) > 0 {
			t.Fatalf("alerts fire on a healthy platform: %v", firing)
		}
	})

	// Kafka stopped: the producer's Kafka client turns unreachable and the alert fires.
	t.Run("alert fires with Kafka stopped", func(t *testing.T) {
		st.StopKafka()
		// Kafka back before the services stop, so that they shut down without waiting on it.
		t.Cleanup(func() { _ = st.StartKafka() })
		waitFor(ctx, t, "IoVKafkaProducerCannotDeliver firing", func() (bool, string) {
			firing := alerts(t, promAddr, "firing")
			return slices.ContainsFunc(firing, func(a alert) bool {
				return a.Labels["alertname"] == "IoVKafkaProducerCannotDeliver" && a.Labels["state"] == "unreachable"
			}), fmt.Sprint(firing)
		})
	})
}

// startStatusExporter runs the ExHook status exporter (exhook-reload -serve, built from
// services/exhook-producer/cmd/exhook-reload) against the simulator's EMQX REST API, with
// the API key in EMQX's bootstrap file format, as the chart runs it; it returns its HTTP
// address once /ready answers.
func startStatusExporter(ctx context.Context, t *testing.T, dir string, broker *emqxsim.Broker) string {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "exhook-reload")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/exhook-reload")
	cmd.Dir = filepath.Join(root, "services", "exhook-producer")
	cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build exhook-reload: %v\n%s", err, out)
	}
	api := httptest.NewServer(broker.APIHandler("iov", "iov-exhook-ops", "s3cret"))
	t.Cleanup(api.Close)
	keyFile := filepath.Join(dir, "bootstrap.txt")
	if err := os.WriteFile(keyFile, []byte("iov-exhook-ops:s3cret:administrator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	exited, out := startProcess(t, "exhook-status", bin, "-serve", addr, "-log-format", "json", "-emqx", api.URL,
		"-name", "iov", "-scope", "vehicles/#", "-api-key-file", keyFile, "-timeout", "1s")
	if err := readiness.Wait(ctx, addr, exited); err != nil {
		t.Fatalf("exhook-status: %v\n%s", err, out.String())
	}
	return addr
}

// buildServices builds the named services (services/<name>) into dir, in the workspace.
func buildServices(t *testing.T, dir string, names ...string) map[string]string {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	bins := map[string]string{}
	for _, name := range names {
		bin := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", bin, ".")
		cmd.Dir = filepath.Join(root, "services", name)
		cmd.Env = append(os.Environ(), "GOWORK="+filepath.Join(root, "go.work"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
		bins[name] = bin
	}
	return bins
}

func freeAddr(t *testing.T) string {
	t.Helper()
	a, err := readiness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// lockedBuffer collects a child process's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startService writes config (its http.listenAddress is the %q left in it) and runs bin
// with it until the test ends; it returns the HTTP (metrics) address once /ready answers.
func startService(ctx context.Context, t *testing.T, bin, config string) string {
	t.Helper()
	name := filepath.Base(bin)
	httpAddr := freeAddr(t)
	cfg := filepath.Join(filepath.Dir(bin), name+".yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, config, httpAddr), 0o600); err != nil {
		t.Fatal(err)
	}
	exited, out := startProcess(t, name, bin, "--config", cfg)
	if err := readiness.Wait(ctx, httpAddr, exited); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out.String())
	}
	return httpAddr
}

// startProcess runs bin until the test ends; exited closes when it ends, out collects its
// output (shown when the test fails).
func startProcess(t *testing.T, name, bin string, args ...string) (<-chan struct{}, *lockedBuffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { stopProcess(t, name, cmd, exited, out) })
	return exited, out
}

// stopProcess sends SIGTERM, waits up to 15s, then kills; it shows the output on failure.
func stopProcess(t *testing.T, name string, cmd *exec.Cmd, exited <-chan struct{}, out *lockedBuffer) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
	if t.Failed() {
		t.Logf("%s output:\n%s", name, out.String())
	}
}

// drive sends what makes every labelled metric appear: hook calls on each delivery mode,
// a dead letter, a poison record for the consumer and a command for the downlink.
func drive(ctx context.Context, t *testing.T, st *stack.Stack, grpcAddr string) {
	t.Helper()
	c, err := emqxsim.Dial(emqxsim.Options{Addr: grpcAddr, PoolSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range []struct {
		topic   string
		payload string
	}{
		{"vehicles/VIN1/telemetry", `{"speed": 42}`},
		{"vehicles/VIN1/telemetry", `not json`},
		{"vehicles/VIN1/events/door", `{"open": true}`},
		{"vehicles/VIN1/raw", `raw bytes`},
	} {
		if _, err := c.Publish(ctx, c.NewMessage("VIN1", m.topic, 1, []byte(m.payload))); err != nil {
			t.Fatalf("publish %s: %v", m.topic, err)
		}
	}

	reg := serde.NewRegistry(st.RegistryURL(), "", "")
	enc, err := serde.NewEncoder(reg, serde.TopicSubject(topicCommands), schemas.MustLatest(schemas.VehicleCommandName), true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	cmdValue, err := enc.Encode(&schemas.VehicleCommand{CommandID: "cmd-1", VehicleID: "VIN1", Name: "door.lock",
		Params: map[string]string{}, IssuedAt: now, ExpiresAt: now.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(st.KafkaBootstrap()))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	if err := kc.ProduceSync(ctx,
		&kgo.Record{Topic: topicTelemetry, Key: []byte("VIN2"), Value: []byte("poison, not avro")},
		&kgo.Record{Topic: topicCommands, Key: []byte("VIN1"), Value: cmdValue},
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// startPrometheus runs prometheus scraping targets (job name -> address) every second, with
// the rule file loaded, and returns its address once it is ready.
func startPrometheus(ctx context.Context, t *testing.T, bin, dir string, targets map[string]string) string {
	t.Helper()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, shortenFor(t), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\nrule_files: [%q]\nscrape_configs:\n", rules)
	for _, job := range slices.Sorted(maps.Keys(targets)) {
		fmt.Fprintf(&cfg, "  - {job_name: %q, static_configs: [{targets: [%q], labels: {namespace: iov}}]}\n", job, targets[job])
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	exited, out := startProcess(t, "prometheus", bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr, "--log.level=warn")
	waitFor(ctx, t, "prometheus ready", func() (bool, string) {
		select {
		case <-exited:
			t.Fatalf("prometheus exited:\n%s", out.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
	return addr
}

// shortenFor returns the chart's rule file with every `for` set to 2s.
func shortenFor(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == "for" {
					n.Content[i+1].Value = "2s"
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	out, err := yaml.Marshal(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func countRules(t *testing.T) int {
	n := 0
	for _, g := range readRules(t).Groups {
		n += len(g.Rules)
	}
	return n
}

// waitFor polls cond every 250ms until it holds, failing with its last detail when ctx ends.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	for {
		ok, detail := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s; last: %s", what, detail)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// apiGet decodes the data field of a Prometheus API answer.
func apiGet(addr, path string, q url.Values, data any) error {
	resp, err := http.Get("http://" + addr + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%s: %w: %s", path, err, body)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, data)
}

// rulesHealthy reports whether Prometheus has evaluated want rules, all with health ok, and
// scrapes all wantTargets targets successfully.
func rulesHealthy(addr string, want, wantTargets int) (bool, string) {
	var rules struct {
		Groups []struct {
			Rules []struct {
				Name           string    `json:"name"`
				Health         string    `json:"health"`
				LastError      string    `json:"lastError"`
				LastEvaluation time.Time `json:"lastEvaluation"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := apiGet(addr, "/api/v1/rules", nil, &rules); err != nil {
		return false, err.Error()
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Health != "ok" || r.LastEvaluation.IsZero() {
				return false, fmt.Sprintf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
			}
			n++
		}
	}
	if n != want {
		return false, fmt.Sprintf("%d rules loaded, want %d", n, want)
	}
	var targets struct {
		ActiveTargets []struct {
			ScrapeURL string `json:"scrapeUrl"`
			Health    string `json:"health"`
			LastError string `json:"lastError"`
		} `json:"activeTargets"`
	}
	if err := apiGet(addr, "/api/v1/targets", nil, &targets); err != nil {
		return false, err.Error()
	}
	for _, tg := range targets.ActiveTargets {
		if tg.Health != "up" {
			return false, fmt.Sprintf("target %s: %s %s", tg.ScrapeURL, tg.Health, tg.LastError)
		}
	}
	return len(targets.ActiveTargets) == wantTargets, fmt.Sprintf("%d targets, want %d", len(targets.ActiveTargets), wantTargets)
}

type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// alerts returns the alerts Prometheus has in state (pending or firing).
func alerts(t *testing.T, addr, state string) []alert {
	t.Helper()
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	if err := apiGet(addr, "/api/v1/alerts", nil, &data); err != nil {
		t.Fatal(err)
	}
	var out []alert
	for _, a := range data.Alerts {
		if a.State == state {
			out = append(out, a)
		}
	}
	return out
}

// checkMetricNames fails for every metric a dashboard query or a rule expression selects
// that no service exports and that testdata/external-metrics.txt does not list. It polls
// the services' /metrics until every name shows up (labelled metrics appear with their first
// observation), so a failure names the metrics that never appeared.
func checkMetricNames(ctx context.Context, t *testing.T, promAddr string, targets map[string]string) {
	queries := map[string]string{} // expression -> where it is used
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			queries[r.Expr] = "rule " + r.Alert
		}
	}
	rendered, err := dashboards.Render()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range rendered {
		for _, expr := range dashboardExprs(t, b) {
			queries[expr] = "dashboard " + name
		}
	}
	used := map[string][]string{} // metric name -> where
	for expr, where := range queries {
		// Grafana's interval variables are not PromQL; any range parses the same way.
		q := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m").Replace(expr)
		var ast any
		if err := apiGet(promAddr, "/api/v1/parse_query", url.Values{"query": {q}}, &ast); err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		names := selectorNames(ast)
		if len(names) == 0 {
			t.Errorf("%s: no metric selected by %q", where, expr)
		}
		for _, n := range names {
			used[n] = append(used[n], where)
		}
	}
	external := readNameList(t, "testdata/external-metrics.txt")

	// Labelled metrics appear with their first observation: give the traffic a minute.
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var missing []string
	waitFor(ctx, t, "every queried metric exported", func() (bool, string) {
		exported := map[string]bool{}
		for job, addr := range targets {
			names, err := scrapeNames(addr)
			if err != nil {
				return false, job + ": " + err.Error()
			}
			for n := range names {
				exported[n] = true
			}
		}
		missing = unknownNames(used, exported, external)
		return len(missing) == 0, fmt.Sprint(missing)
	})
	for _, n := range missing {
		t.Errorf("unknown metric %s (used by %v)", n, used[n])
	}
	t.Logf("%d queries, %d metric names, all exported or documented", len(queries), len(used))
}

// dashboardExprs returns every target expression of a dashboard JSON.
func dashboardExprs(t *testing.T, b []byte) []string {
	t.Helper()
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return out
}

// selectorNames walks the AST /api/v1/parse_query returns and collects the metric name of
// every vector and range (matrix) selector.
func selectorNames(n any) []string {
	var out []string
	switch v := n.(type) {
	case map[string]any:
		if v["type"] == "vectorSelector" || v["type"] == "matrixSelector" {
			if name, _ := v["name"].(string); name != "" {
				out = append(out, name)
			}
		}
		for _, c := range v {
			out = append(out, selectorNames(c)...)
		}
	case []any:
		for _, c := range v {
			out = append(out, selectorNames(c)...)
		}
	}
	return out
}

// scrapeNames returns the sample names a /metrics endpoint exports: each family's name, and
// for histograms and summaries also its _bucket, _sum and _count series.
func scrapeNames(addr string) (map[string]bool, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return exportedNames(resp.Body)
}

// exportedNames parses the Prometheus text format (see scrapeNames).
func exportedNames(r io.Reader) (map[string]bool, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for name, f := range fams {
		names[name] = true
		if s := f.GetType().String(); s == "HISTOGRAM" || s == "SUMMARY" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[name+suffix] = true
			}
		}
	}
	return names, nil
}

// unknownNames returns, sorted, the used names neither exported nor external.
func unknownNames(used map[string][]string, exported, external map[string]bool) []string {
	var out []string
	for n := range used {
		if !exported[n] && !external[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// readNameList reads one metric name a line, skipping blank lines and # comments.
func readNameList(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out[line] = true
		}
	}
	return out
}
