package charttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"go.yaml.in/yaml/v3"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/kafkacluster"
	"github.com/iov-platform/iov/tools/devkit/kafkacluster/kafkatest"
	"github.com/iov-platform/iov/tools/devkit/producerproc"
)

// aclBinding is one Kafka ACL binding (ALLOW, host *) as Strimzi's User Operator creates it
// from a KafkaUser's spec.authorization.acls: principal User:<KafkaUser name> (SCRAM), the
// cluster resource named kafka-cluster.
type aclBinding struct {
	principal                 string
	resourceType, name, match string
	operation                 string
}

func (b aclBinding) String() string {
	return fmt.Sprintf("%s %s %s:%s(%s)", b.principal, b.operation, b.resourceType, b.name, b.match)
}

// userACLs converts every rendered KafkaUser's ACLs to bindings, by user.
func userACLs(t *testing.T, objs []object) map[string][]aclBinding {
	t.Helper()
	out := map[string][]aclBinding{}
	for _, u := range objs {
		if u.kind() != "KafkaUser" {
			continue
		}
		if path(u, "spec", "authorization", "type") != "simple" {
			t.Fatalf("KafkaUser %s: no simple authorization", u.name())
		}
		for _, a := range path(u, "spec", "authorization", "acls").([]any) {
			if typ := path(a, "type"); typ != nil && typ != "allow" {
				t.Fatalf("KafkaUser %s: ACL type %v", u.name(), typ)
			}
			rt := fmt.Sprint(path(a, "resource", "type"))
			name, match := fmt.Sprint(path(a, "resource", "name")), "literal"
			if p := path(a, "resource", "patternType"); p != nil {
				match = fmt.Sprint(p)
			}
			if rt == "cluster" {
				name, match = "kafka-cluster", "literal"
			}
			for _, op := range path(a, "operations").([]any) {
				out[u.name()] = append(out[u.name()], aclBinding{"User:" + u.name(), rt, name, match, fmt.Sprint(op)})
			}
		}
	}
	return out
}

// alterACLs creates (or, with remove, deletes) bindings through the admin API.
func alterACLs(ctx context.Context, cl *kgo.Client, bindings []aclBinding, remove bool) error {
	parse := func(b aclBinding) (kmsg.ACLResourceType, kmsg.ACLResourcePatternType, kmsg.ACLOperation, error) {
		rt, err1 := kmsg.ParseACLResourceType(b.resourceType)
		pt, err2 := kmsg.ParseACLResourcePatternType(strings.Replace(b.match, "prefix", "prefixed", 1)) // Strimzi's prefix is Kafka's PREFIXED
		op, err3 := kmsg.ParseACLOperation(b.operation)
		if err := errors.Join(err1, err2, err3); err != nil {
			return 0, 0, 0, fmt.Errorf("%s: %w", b, err)
		}
		return rt, pt, op, nil
	}
	if remove {
		req := kmsg.NewPtrDeleteACLsRequest()
		for _, b := range bindings {
			rt, pt, op, err := parse(b)
			if err != nil {
				return err
			}
			f := kmsg.NewDeleteACLsRequestFilter()
			f.ResourceType, f.ResourceName, f.ResourcePatternType = rt, kmsg.StringPtr(b.name), pt
			f.Principal, f.Host, f.Operation, f.PermissionType = kmsg.StringPtr(b.principal), kmsg.StringPtr("*"), op, kmsg.ACLPermissionTypeAllow
			req.Filters = append(req.Filters, f)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for i, r := range resp.Results {
			if err := kerr.ErrorForCode(r.ErrorCode); err != nil || len(r.MatchingACLs) != 1 {
				return fmt.Errorf("delete %s: %v, %d matched", bindings[i], err, len(r.MatchingACLs))
			}
		}
		return nil
	}
	req := kmsg.NewPtrCreateACLsRequest()
	for _, b := range bindings {
		rt, pt, op, err := parse(b)
		if err != nil {
			return err
		}
		c := kmsg.NewCreateACLsRequestCreation()
		c.ResourceType, c.ResourceName, c.ResourcePatternType = rt, b.name, pt
		c.Principal, c.Host, c.Operation, c.PermissionType = b.principal, "*", op, kmsg.ACLPermissionTypeAllow
		req.Creations = append(req.Creations, c)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for i, r := range resp.Results {
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return fmt.Errorf("create %s: %w", bindings[i], err)
		}
	}
	return nil
}

// TestKafkaACLsOnRealBroker proves the production KafkaUsers' ACLs are enough for what the
// producer does, and no more than what each service needs, on a real Kafka (KRaft, the
// StandardAuthorizer Strimzi's simple authorization configures, no ACL = denied) with a
// SASL_SSL SCRAM-SHA-512 listener. The SCRAM users and ACL bindings are those of the
// production render's KafkaUsers, converted as Strimzi's User Operator does. The producer
// binary runs on the rendered config.yaml (addresses and mounted files moved to the test's)
// and every topic its user may write gets its record; with the dead-letter ACL removed, the
// dead letter alone is refused (TOPIC_AUTHORIZATION_FAILED) while the routes still work.
// Each user is also refused what it does not need. Real Kafka: IOV_REAL_KAFKA=1 (make
// test-kafka).
func TestKafkaACLsOnRealBroker(t *testing.T) {
	kafkatest.Skip(t)
	objs := mustObjects(t, renderVariant(t, variantNamed(t, "production")))
	acls := userACLs(t, objs)
	if len(acls) == 0 {
		t.Fatal("production render has no KafkaUser with ACLs")
	}
	passwords := map[string]string{}
	for u := range acls {
		passwords[u] = "pw-" + u
	}
	// The PLAINTEXT and CONTROLLER listeners of the harness stand for Strimzi's internal
	// listeners, whose components are super users; clients use the SASL_SSL listener.
	sc := kafkatest.StartSecure(t, 1, passwords, map[string]string{
		"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
		"super.users":           "User:ANONYMOUS",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var specs []kafkacluster.TopicSpec
	for _, o := range objs {
		if o.kind() == "KafkaTopic" {
			specs = append(specs, kafkacluster.TopicSpec{Name: fmt.Sprint(path(o, "spec", "topicName")), Partitions: 1, ReplicationFactor: 1})
		}
	}
	if err := sc.CreateTopics(ctx, specs...); err != nil {
		t.Fatal(err)
	}
	admin, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(sc.Bootstrap(), ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var all []aclBinding
	for _, u := range sortedKeys(acls) {
		all = append(all, acls[u]...)
	}
	if err := alterACLs(ctx, admin, all, false); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(sc.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	// The producer on its rendered config, with the Kafka address and the mounted files
	// (password, cluster CA) moved to the test's.
	prodCfg := renderedConfig(t, objs, "exhook-producer")
	user := securedFor(t, prodCfg, sc, passwords)
	reg := srfake.New()
	defer reg.Close()
	// The registry is not what this test is about: the producer registers its schemas.
	prodCfg["registry"] = map[string]any{"url": reg.URL(), "autoRegister": true}
	grpcAddr, _ := producerproc.Run(t, filepath.Join(serviceBins(t), "exhook-producer"), func(grpcAddr, httpAddr string) string {
		// Nor is the hook's TLS (TestProducerConfigFromChart checks its files): plaintext gRPC.
		prodCfg["grpc"] = map[string]any{"listenAddress": grpcAddr}
		prodCfg["http"] = map[string]any{"listenAddress": httpAddr}
		b, err := yaml.Marshal(prodCfg)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	})
	sim, err := emqxsim.Dial(emqxsim.Options{Addr: grpcAddr, PoolSize: 1, RequestTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()

	// One record for every topic the producer's user may write: each route, the status
	// topic (client.connected), the command-status topic (message.delivered of a command)
	// and the dead-letter topic (invalid JSON on the sync route).
	topics := map[string]string{} // role -> topic
	for _, r := range prodCfg["routes"].([]any) {
		topics["route "+fmt.Sprint(path(r, "name"))] = fmt.Sprint(path(r, "kafkaTopic"))
	}
	topics["status"] = fmt.Sprint(path(prodCfg, "topics", "status"))
	topics["dead letter"] = fmt.Sprint(path(prodCfg, "topics", "deadLetter"))
	topics["command status"] = fmt.Sprint(path(prodCfg, "commands", "statusTopic"))
	send := func(vehicle string, deadLetter bool) error {
		for _, m := range []struct{ topic, payload string }{
			{"vehicles/" + vehicle + "/telemetry", `{"speed":1}`},
			{"vehicles/" + vehicle + "/diag/obd", "raw"},
		} {
			if _, err := sim.Publish(ctx, sim.NewMessage(vehicle, m.topic, 1, []byte(m.payload))); err != nil {
				return fmt.Errorf("publish %s: %w", m.topic, err)
			}
		}
		payload := `{"crash":false}` // the sync route: the answer waits for Kafka's acknowledgement
		if deadLetter {
			payload = `{not json`
		}
		if _, err := sim.Publish(ctx, sim.NewMessage(vehicle, "vehicles/"+vehicle+"/events/crash", 1, []byte(payload))); err != nil {
			return fmt.Errorf("publish events (dead letter %v): %w", deadLetter, err)
		}
		if err := sim.Connected(ctx, vehicle); err != nil {
			return fmt.Errorf("client.connected: %w", err)
		}
		cmd := sim.NewMessage("iov-downlink", "vehicles/"+vehicle+"/commands/cmd-"+vehicle, 1, []byte("{}"))
		if err := sim.Delivered(ctx, vehicle, cmd); err != nil {
			return fmt.Errorf("message.delivered: %w", err)
		}
		return nil
	}
	if err := send("VIN1", false); err != nil {
		t.Fatal(err)
	}
	if err := send("VIN1", true); err != nil {
		t.Fatal(err)
	}
	got := keysByTopic(t, ctx, sc.Bootstrap(), slices.Sorted(mapValues(topics)), func(topic string, keys []string) bool {
		return slices.Contains(keys, "VIN1")
	})
	for role, topic := range topics {
		if !slices.Contains(got[topic], "VIN1") {
			t.Errorf("%s: no record of VIN1 in %s (got %v)", role, topic, got[topic])
		}
	}

	t.Run("without the dead-letter ACL only the dead letter is refused", func(t *testing.T) {
		var dl []aclBinding
		for _, b := range acls[user] {
			if b.resourceType == "topic" && b.name == topics["dead letter"] && b.operation == "Write" {
				dl = append(dl, b)
			}
		}
		if len(dl) != 1 {
			t.Fatalf("the producer's user has %d Write ACLs on %s", len(dl), topics["dead letter"])
		}
		if err := alterACLs(ctx, admin, dl, true); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := alterACLs(ctx, admin, dl, false); err != nil {
				t.Error(err)
			}
		}()
		err := send("VIN2", true)
		if err == nil || !strings.Contains(err.Error(), "events") {
			t.Fatalf("with the dead-letter ACL removed the dead letter was accepted (err %v)", err)
		}
		t.Logf("dead letter refused: %v", err)
		if !strings.Contains(strings.ToLower(err.Error()), "authoriz") {
			t.Errorf("the refusal does not name authorization: %v", err)
		}
		if err := send("VIN2", false); err != nil {
			t.Fatalf("the routes failed without the dead-letter ACL: %v", err)
		}
		got := keysByTopic(t, ctx, sc.Bootstrap(), slices.Sorted(mapValues(topics)), func(topic string, keys []string) bool {
			return topic == topics["dead letter"] || slices.Contains(keys, "VIN2")
		})
		for role, topic := range topics {
			has := slices.Contains(got[topic], "VIN2")
			if role == "dead letter" && has {
				t.Errorf("a VIN2 record reached %s without the ACL", topic)
			}
			if role != "dead letter" && !has {
				t.Errorf("%s: no record of VIN2 in %s (got %v)", role, topic, got[topic])
			}
		}
	})

	t.Run("the consumer reads its topics in its group", func(t *testing.T) {
		cfg := renderedConfig(t, objs, "sample-consumer")
		securedFor(t, cfg, sc, passwords)
		cfg["registry"] = map[string]any{"url": reg.URL()}
		var subscribed []string
		for _, tp := range path(cfg, "kafka", "topics").([]any) {
			subscribed = append(subscribed, fmt.Sprint(tp))
		}
		want := 0
		for _, keys := range keysByTopic(t, ctx, sc.Bootstrap(), subscribed, func(string, []string) bool { return false }) {
			want += len(keys)
		}
		_, httpAddr := producerproc.Run(t, filepath.Join(serviceBins(t), "sample-consumer"), func(_, httpAddr string) string {
			cfg["http"] = map[string]any{"listenAddress": httpAddr}
			b, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		})
		var handled int
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			if handled = metricSum(t, httpAddr, "consumer_records_total", "result", "handled"); handled >= want {
				break
			}
		}
		if handled != want {
			t.Fatalf("the consumer handled %d records of the %d in %v", handled, want, subscribed)
		}
		t.Logf("the consumer handled all %d records of %v", handled, subscribed)
	})

	t.Run("the downlink reads commands in its group and writes their status", func(t *testing.T) {
		mqtt, err := emqxsim.StartBroker(emqxsim.BrokerOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer mqtt.Close()
		cfg := renderedConfig(t, objs, "downlink")
		securedFor(t, cfg, sc, passwords)
		cfg["registry"] = map[string]any{"url": reg.URL()}
		cfg["mqtt"].(map[string]any)["brokerUrl"] = mqtt.URL()
		cfg["mqtt"].(map[string]any)["clientId"] = "iov-downlink-acl-test"
		commandsTopic := fmt.Sprint(path(cfg, "kafka", "commandsTopic"))
		statusTopic := fmt.Sprint(path(cfg, "kafka", "statusTopic"))
		producerproc.Run(t, filepath.Join(serviceBins(t), "downlink"), func(_, httpAddr string) string {
			cfg["http"] = map[string]any{"listenAddress": httpAddr}
			b, err := yaml.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		})
		// An application's command (written here as a super user) to a vehicle: the downlink
		// consumes it in its group, publishes it to the broker double and writes the SENT
		// status (the later statuses come from EMQX's hooks through the producer, not wired
		// to this double).
		enc, err := serde.NewEncoder(serde.NewRegistry(reg.URL(), "", ""), serde.TopicSubject(commandsTopic), schemas.MustLatest(schemas.VehicleCommandName), true)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		value, err := enc.Encode(&schemas.VehicleCommand{CommandID: "acl-cmd-1", VehicleID: "VIN-DL", Name: "door.lock",
			Params: map[string]string{}, IssuedAt: now, ExpiresAt: now.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if err := admin.ProduceSync(ctx, &kgo.Record{Topic: commandsTopic, Key: []byte("VIN-DL"), Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		deadLetter := fmt.Sprint(path(cfg, "kafka", "deadLetterTopic"))
		got := keysByTopic(t, ctx, sc.Bootstrap(), []string{statusTopic, deadLetter}, func(topic string, keys []string) bool {
			return topic == deadLetter || slices.Contains(keys, "VIN-DL")
		})
		if !slices.Contains(got[statusTopic], "VIN-DL") {
			t.Fatalf("no status record of the command in %s", statusTopic)
		}
		if slices.Contains(got[deadLetter], "VIN-DL") {
			t.Fatalf("the command was dead-lettered")
		}
		t.Logf("the downlink consumed the command and wrote its status to %s", statusTopic)
	})

	t.Run("each user is refused what it does not need", func(t *testing.T) {
		for _, c := range []struct {
			user, topic string
			write       bool
			group, want string
		}{
			{release + "-exhook-producer", "iov.vehicle.commands", true, "", "TOPIC_AUTHORIZATION_FAILED"},   // only the applications write commands
			{release + "-exhook-producer", "iov.vehicle.telemetry", false, "", "TOPIC_AUTHORIZATION_FAILED"}, // the producer never reads
			{release + "-sample-consumer", "iov.vehicle.telemetry", true, "", "TOPIC_AUTHORIZATION_FAILED"},  // the consumer never writes its input
			{release + "-sample-consumer", "iov.vehicle.telemetry", false, "another-group", "GROUP_AUTHORIZATION_FAILED"},
			{release + "-downlink", "iov.vehicle.telemetry", false, "", "TOPIC_AUTHORIZATION_FAILED"}, // the downlink reads only commands
			{release + "-downlink", "iov.vehicle.commands", true, "", "TOPIC_AUTHORIZATION_FAILED"},
		} {
			if _, ok := passwords[c.user]; !ok {
				t.Fatalf("no KafkaUser %s", c.user)
			}
			opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(sc.SecureBootstrap(), ",")...),
				kgo.DialTLSConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}),
				kgo.SASL(scram.Auth{User: c.user, Pass: passwords[c.user]}.AsSha512Mechanism()),
				kgo.RequestRetries(1), kgo.RecordRetries(1), kgo.DisableIdempotentWrite()}
			if !c.write {
				opts = append(opts, kgo.ConsumeTopics(c.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			}
			if c.group != "" {
				opts = append(opts, kgo.ConsumerGroup(c.group))
			}
			cl, err := kgo.NewClient(opts...)
			if err != nil {
				t.Fatal(err)
			}
			cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
			if c.write {
				err = cl.ProduceSync(cctx, &kgo.Record{Topic: c.topic, Value: []byte("x")}).FirstErr()
			} else {
				err = nil
				for err == nil && cctx.Err() == nil {
					fetches := cl.PollFetches(cctx)
					for _, fe := range fetches.Errors() {
						if !errors.Is(fe.Err, context.DeadlineExceeded) {
							err = fe.Err
						}
					}
					if n := fetches.NumRecords(); n > 0 {
						err = fmt.Errorf("read %d records", n)
					}
				}
			}
			ccancel()
			cl.Close()
			what := map[bool]string{true: "write", false: "read"}[c.write]
			if c.group != "" {
				what += " in group " + c.group
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s may %s %s (err %v); its ACLs allow more than it needs", c.user, what, c.topic, err)
			} else {
				t.Logf("%s %s %s: %v", c.user, what, c.topic, err)
			}
		}
	})
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, v := range m {
			if !seen[v] && !yield(v) {
				return
			}
			seen[v] = true
		}
	}
}

// keysByTopic reads every topic from the start, as a super user on the PLAINTEXT listener,
// until done holds for every topic or a few seconds passed, and returns the record keys per
// topic.
func keysByTopic(t *testing.T, ctx context.Context, bootstrap string, topics []string, done func(topic string, keys []string) bool) map[string][]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(bootstrap, ",")...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string][]string{}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fetches := cl.PollFetches(pctx)
		cancel()
		fetches.EachRecord(func(r *kgo.Record) { got[r.Topic] = append(got[r.Topic], string(r.Key)) })
		if !slices.ContainsFunc(topics, func(tp string) bool { return !done(tp, got[tp]) }) {
			break
		}
	}
	return got
}

// renderedConfig is the config.yaml of svc's ConfigMap in the render.
func renderedConfig(t *testing.T, objs []object, svc string) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o.kind() == "ConfigMap" && o.name() == release+"-"+svc {
			s, err := dataKey(o, "config.yaml")
			if err != nil {
				t.Fatal(err)
			}
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(s), &cfg); err != nil {
				t.Fatal(err)
			}
			return cfg
		}
	}
	t.Fatalf("no %s ConfigMap rendered", svc)
	return nil
}

// securedFor points a rendered service config at the secure cluster: its SASL_SSL listener,
// the test CA in place of the mounted cluster CA, and the KafkaUser's password in a file in
// place of the mounted Secret key. It returns the user the config authenticates as.
func securedFor(t *testing.T, cfg map[string]any, sc *kafkatest.SecureCluster, passwords map[string]string) string {
	t.Helper()
	kafka := cfg["kafka"].(map[string]any)
	props := kafka["properties"].(map[string]any)
	user := fmt.Sprint(props["sasl.username"])
	if _, ok := passwords[user]; !ok {
		t.Fatalf("the config authenticates as %s, which has no KafkaUser", user)
	}
	if _, ok := kafka["propertyFiles"].(map[string]any)["sasl.password"]; !ok {
		t.Fatal("the config reads no sasl.password file")
	}
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(passwords[user]), 0o600); err != nil {
		t.Fatal(err)
	}
	kafka["bootstrapServers"] = sc.SecureBootstrap()
	props["ssl.ca.location"] = sc.CAFile
	kafka["propertyFiles"] = map[string]any{"sasl.password": pwFile}
	cfg["log"] = map[string]any{"level": "info", "format": "text"}
	return user
}

// metricSum adds up the samples of the counter metric that carry the label name=value, from
// /metrics at addr.
func metricSum(t *testing.T, addr, metric, name, value string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, m := range fams[metric].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == name && l.GetValue() == value {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return int(sum)
}
