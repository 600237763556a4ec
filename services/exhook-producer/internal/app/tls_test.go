package app_test

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/iov-platform/iov/services/exhook-producer/internal/app"
	"github.com/iov-platform/iov/services/exhook-producer/internal/config"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/devkit/testpki"
)

// hookPKI is a server certificate and client CA written where the producer reads them.
type hookPKI struct {
	ca                       *testpki.CA
	dir, caFile              string
	certFile, keyFile        string
	serverCert               *testpki.Leaf
	goodClient, expired, bad *testpki.Leaf // from ca, from ca but expired, from another CA
}

func newHookPKI(t *testing.T) *hookPKI {
	t.Helper()
	p := &hookPKI{dir: t.TempDir()}
	var err error
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	p.ca, err = testpki.NewCA("emqx clients and hook CA")
	must(err)
	other, err := testpki.NewCA("another CA")
	must(err)
	p.serverCert, err = p.ca.IssueValid("127.0.0.1", testpki.Server)
	must(err)
	p.goodClient, err = p.ca.IssueValid("emqx", testpki.Client)
	must(err)
	now := time.Now()
	p.expired, err = p.ca.Issue("emqx", testpki.Client, now.Add(-48*time.Hour), now.Add(-time.Hour))
	must(err)
	p.bad, err = other.IssueValid("emqx", testpki.Client)
	must(err)
	p.certFile, p.keyFile, err = p.serverCert.WriteFiles(p.dir)
	must(err)
	p.caFile = filepath.Join(p.dir, "client-ca.pem")
	must(testpki.WriteFile(p.caFile, p.ca.PEM))
	return p
}

// tlsSetup starts the stack and returns a producer config serving mutual TLS from p's files.
func tlsSetup(t *testing.T) (*stack.Stack, *hookPKI, *config.Config) {
	t.Helper()
	st := startStack(t)
	p := newHookPKI(t)
	cfg := testConfig(t, st.KafkaBootstrap(), st.RegistryURL())
	cfg.GRPC.TLS = config.GRPCTLS{CertFile: p.certFile, KeyFile: p.keyFile, ClientCAFile: p.caFile, ReloadInterval: 50 * time.Millisecond}
	return st, p, cfg
}

// publish sends one telemetry message as an EMQX dialing with conf would.
func publish(t *testing.T, addr string, conf *tls.Config, vehicle string) error {
	t.Helper()
	sim, err := emqxsim.Dial(emqxsim.Options{Addr: addr, PoolSize: 1, RequestTimeout: 5 * time.Second, TLS: conf})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	_, err = sim.Publish(context.Background(), sim.NewMessage(vehicle, "vehicles/"+vehicle+"/telemetry", 1, []byte(`{"ok":true}`)))
	return err
}

func clientTLS(roots *testpki.CA, cert *testpki.Leaf) *tls.Config {
	c := &tls.Config{RootCAs: roots.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.Certificates = []tls.Certificate{cert.TLS}
	}
	return c
}

// TestHookMutualTLS: with a client CA, only a client presenting a valid certificate from
// that CA can call the hook; every other one is refused before any message is read, and
// only the good client's message reaches Kafka.
func TestHookMutualTLS(t *testing.T) {
	st, p, cfg := tlsSetup(t)
	h := start(t, cfg, st)
	addr := h.app.GRPCAddr()

	refused := []struct {
		name string
		conf *tls.Config
	}{
		{"plaintext", nil},
		{"no client certificate", clientTLS(p.ca, nil)},
		{"certificate from another CA", clientTLS(p.ca, p.bad)},
		{"expired certificate", clientTLS(p.ca, p.expired)},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			err := publish(t, addr, c.conf, "REFUSED")
			if code := status.Code(err); code != codes.Unavailable {
				t.Fatalf("publish: code %v (%v), want Unavailable (connection refused by the TLS handshake)", code, err)
			}
		})
	}
	if err := publish(t, addr, clientTLS(p.ca, p.goodClient), "VIN1"); err != nil {
		t.Fatalf("good client: %v", err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	recs, err := stack.ReadAll(rctx, st.KafkaBootstrap(), 1, telemetryTopic)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || string(recs[0].Key) != "VIN1" {
		t.Fatalf("telemetry holds %d records (first key %q), want only VIN1's", len(recs), keyOf(recs))
	}
}

func keyOf(recs []stack.Record) string {
	if len(recs) == 0 {
		return ""
	}
	return string(recs[0].Key)
}

// TestHookTLSRotation: a new server certificate (from a new CA) and a new client CA written
// over the mounted files are served to new connections without a restart; a broken file in
// between does not take the listener down.
func TestHookTLSRotation(t *testing.T) {
	st, p, cfg := tlsSetup(t)
	h := start(t, cfg, st)
	addr := h.app.GRPCAddr()

	// An EMQX that keeps its connection across the rotation.
	kept, err := emqxsim.Dial(emqxsim.Options{Addr: addr, PoolSize: 1, RequestTimeout: 5 * time.Second, TLS: clientTLS(p.ca, p.goodClient)})
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	if _, err := kept.Load(context.Background()); err != nil {
		t.Fatalf("before rotation: %v", err)
	}

	// A half-written or broken file keeps the last good certificate in service.
	if err := testpki.WriteFile(p.certFile, []byte("-----BEGIN CERTIFICATE-----\ntruncated")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * 50 * time.Millisecond) // several reload intervals
	if err := publish(t, addr, clientTLS(p.ca, p.goodClient), "VIN1"); err != nil {
		t.Fatalf("with a broken certificate file: %v, want the last good certificate served", err)
	}

	ca2, err := testpki.NewCA("rotated CA")
	if err != nil {
		t.Fatal(err)
	}
	server2, err := ca2.IssueValid("127.0.0.1", testpki.Server)
	if err != nil {
		t.Fatal(err)
	}
	client2, err := ca2.IssueValid("emqx", testpki.Client)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := server2.WriteFiles(p.dir); err != nil {
		t.Fatal(err)
	}
	if err := testpki.WriteFile(p.caFile, ca2.PEM); err != nil {
		t.Fatal(err)
	}

	// New connections get the new certificate and are checked against the new client CA.
	waitFor(t, func() bool { return publish(t, addr, clientTLS(ca2, client2), "VIN2") == nil })
	if err := publish(t, addr, clientTLS(p.ca, p.goodClient), "OLD"); status.Code(err) != codes.Unavailable {
		t.Fatalf("client trusting only the old CA after rotation: %v, want Unavailable", err)
	}
	// The connection made before the rotation keeps working.
	if _, err := kept.Load(context.Background()); err != nil {
		t.Fatalf("connection from before the rotation: %v", err)
	}
}

// TestHookTLSBadFilesFailTheStart: a certificate that does not load stops the start with its
// file named, rather than serving plaintext or failing each handshake.
func TestHookTLSBadFilesFailTheStart(t *testing.T) {
	_, p, cfg := tlsSetup(t)
	if err := os.WriteFile(p.keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, logger(t))
	if err == nil {
		a.Run(cancelled())
	}
	if err == nil || !strings.Contains(err.Error(), p.keyFile) {
		t.Fatalf("start with a bad key: %v, want an error naming %s", err, p.keyFile)
	}
}

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
