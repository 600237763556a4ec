package app_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/iov-platform/iov/kit/svcconfig"
	"github.com/iov-platform/iov/services/exhook-producer/internal/app"
	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/devkit/testpki"
)

// securedStack is kfake with a TLS listener and SCRAM-SHA-512 users (as a Strimzi TLS
// listener with SCRAM authentication) and the registry behind TLS and basic auth, with the
// files a pod would have mounted: the cluster CA, the KafkaUser's password, the registry's
// CA and credentials.
type securedStack struct {
	st                         *stack.Stack
	dir                        string
	caFile, kafkaPassword      string
	registryURL, registryCA    string
	registryUser, registryPass string
	admin                      scram.Auth
	clientTLS                  *tls.Config
}

func startSecuredStack(t *testing.T) *securedStack {
	t.Helper()
	ca, err := testpki.NewCA("cluster CA")
	if err != nil {
		t.Fatal(err)
	}
	srvCert, err := ca.IssueValid("127.0.0.1", testpki.Server)
	if err != nil {
		t.Fatal(err)
	}
	s := &securedStack{dir: t.TempDir(), admin: scram.Auth{User: "admin", Pass: "admin-pw"},
		clientTLS: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}}
	s.st, err = stack.Start(stack.Options{Partitions: 2, Topics: []string{telemetryTopic, eventsTopic, statusTopic, deadTopic},
		KafkaOpts: []kfake.Opt{
			kfake.EnableSASL(),
			kfake.Superuser("SCRAM-SHA-512", s.admin.User, s.admin.Pass),
			kfake.User("SCRAM-SHA-512", "exhook-producer", "kafka-pw"),
			kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srvCert.TLS}, MinVersion: tls.VersionTLS12}),
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.st.Close)
	write := func(name, content string) string {
		p := filepath.Join(s.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s.caFile = write("ca.crt", string(ca.PEM))
	s.kafkaPassword = write("password", "kafka-pw")

	target, err := url.Parse(s.st.RegistryURL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	reg := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "exhook" || p != "registry-pw" {
			http.Error(w, `{"error_code":401,"message":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	reg.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert.TLS}, MinVersion: tls.VersionTLS12}
	reg.StartTLS()
	t.Cleanup(reg.Close)
	s.registryURL, s.registryCA = reg.URL, s.caFile
	s.registryUser, s.registryPass = write("reg-username", "exhook\n"), write("reg-password", "registry-pw\n")
	return s
}

func (s *securedStack) config(t *testing.T) *config.Config {
	cfg := testConfig(t, s.st.KafkaBootstrap(), s.registryURL)
	for k, v := range map[string]string{"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512",
		"sasl.username": "exhook-producer", "ssl.ca.location": s.caFile} {
		cfg.Kafka.Properties[k] = v
	}
	cfg.Kafka.PropertyFiles = map[string]string{"sasl.password": s.kafkaPassword}
	cfg.Registry.CAFile, cfg.Registry.UsernameFile, cfg.Registry.PasswordFile = s.registryCA, s.registryUser, s.registryPass
	return cfg
}

// reparse reads the property files as the config loader does at a start.
func reparse(t *testing.T, cfg *config.Config) *config.Config {
	t.Helper()
	props := map[string]string{}
	for k, v := range cfg.Kafka.Properties {
		props[k] = v
	}
	cfg.Kafka.Properties = props
	if err := svcconfig.ApplyPropertyFiles("kafka", &cfg.Kafka.Properties, cfg.Kafka.PropertyFiles); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAuthenticatedKafkaAndRegistry: the producer reaches a SASL_SSL (SCRAM-SHA-512) Kafka
// with the password read from a mounted file and the cluster CA, and an https registry with
// basic auth from files; a sync message is acknowledged and readable with the same
// security. A wrong Kafka password or registry password is refused.
func TestAuthenticatedKafkaAndRegistry(t *testing.T) {
	s := startSecuredStack(t)
	h := start(t, reparse(t, s.config(t)), s.st)
	if _, err := h.sim.Publish(context.Background(), h.sim.NewMessage("VIN1", "vehicles/VIN1/events/crash", 1, []byte(`{"ok":true}`))); err != nil {
		t.Fatalf("sync publish over SASL_SSL: %v", err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.st.KafkaBootstrap()), kgo.DialTLSConfig(s.clientTLS),
		kgo.SASL(s.admin.AsSha512Mechanism()), kgo.ConsumeTopics(eventsTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fetches := cl.PollFetches(ctx)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Key) != "VIN1" {
		t.Fatalf("events topic: %d records", len(recs))
	}

	t.Run("wrong kafka password", func(t *testing.T) {
		cfg := s.config(t)
		bad := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(bad, []byte("not-it"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.Kafka.PropertyFiles["sasl.password"] = bad
		cfg.Kafka.SyncTimeout = 2 * time.Second
		cfg.Shutdown.DrainTimeout = 2 * time.Second
		a, err := app.New(reparse(t, cfg), logger(t))
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- a.Run(ctx) }()
		sim := dialSim(t, a.GRPCAddr())
		_, err = sim.Publish(context.Background(), sim.NewMessage("VIN2", "vehicles/VIN2/events/crash", 1, []byte(`{}`)))
		stop()
		<-done
		if err == nil {
			t.Fatal("sync publish acknowledged with a wrong SCRAM password")
		}
	})
	t.Run("wrong registry password", func(t *testing.T) {
		cfg := s.config(t)
		if err := os.WriteFile(s.registryPass, []byte("not-it"), 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(s.registryPass, []byte("registry-pw"), 0o600)
		a, err := app.New(reparse(t, cfg), logger(t))
		if err == nil {
			a.Run(cancelled())
		}
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("start with a wrong registry password: %v, want a 401", err)
		}
	})
}

func dialSim(t *testing.T, addr string) *emqxsim.Client {
	t.Helper()
	sim, err := emqxsim.Dial(emqxsim.Options{Addr: addr, PoolSize: 1, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Close)
	return sim
}
