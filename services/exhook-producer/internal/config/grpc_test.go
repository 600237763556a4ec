package config

import (
	"strings"
	"testing"
)

// TestGRPCListenerChecks: every problem of the grpc section is reported at once.
func TestGRPCListenerChecks(t *testing.T) {
	_, err := Parse([]byte(minimal + `
grpc:
  listenAddress: ":9000"
  maxPacketBytes: 300000000
  maxConcurrentStreams: 0
  maxConnections: -1
  handshakeTimeout: 0s
  tls: {keyFile: /k.pem, clientCAFile: /ca.pem, reloadInterval: 0s}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"grpc.maxPacketBytes 300000000: want 1..268435455",
		"grpc.maxConcurrentStreams must be positive",
		"grpc.maxConnections must be positive",
		"grpc.handshakeTimeout must be positive",
		"grpc.tls: certFile and keyFile go together",
		"grpc.tls.reloadInterval must be positive",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for yaml, want := range map[string]string{
		"{maxRunningCalls: -1}":                             "grpc.maxRunningCalls -1: want 0 (no bound) to grpc.maxConcurrentStreams (1024)",
		"{maxRunningCalls: 101, maxConcurrentStreams: 100}": "grpc.maxRunningCalls 101: want 0 (no bound) to grpc.maxConcurrentStreams (100)",
	} {
		if _, err := Parse([]byte(minimal + "\ngrpc: " + yaml + "\n")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", yaml, err, want)
		}
	}
	for _, yaml := range []string{"{maxRunningCalls: 0}", "{maxRunningCalls: 100, maxConcurrentStreams: 100}"} {
		if _, err := Parse([]byte(minimal + "\ngrpc: " + yaml + "\n")); err != nil {
			t.Errorf("%s: %v", yaml, err)
		}
	}
	_, err = Parse([]byte(minimal + "\ngrpc: {tls: {clientCAFile: /ca.pem}}\n"))
	if err == nil || !strings.Contains(err.Error(), "grpc.tls.clientCAFile needs certFile and keyFile") {
		t.Fatalf("client CA without a server certificate: %v", err)
	}
}

// TestReceiveLimitCoversEveryEMQXPacket: the gRPC receive limit lets the largest packet EMQX
// may send, or kafka.maxPayloadBytes if larger, reach the handler with the request around it.
func TestReceiveLimitCoversEveryEMQXPacket(t *testing.T) {
	tests := []struct {
		yaml string
		want int
	}{
		{"", MaxEMQXPacketBytes + RequestHeadroom},
		{"\ngrpc: {maxPacketBytes: 1048576}\n", 1048576 + RequestHeadroom},
		{"\ngrpc: {maxPacketBytes: 1000}\n", 1000000 + RequestHeadroom}, // kafka.maxPayloadBytes default
	}
	for _, tt := range tests {
		cfg, err := Parse([]byte(minimal + tt.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.MaxReceiveBytes(); got != tt.want {
			t.Errorf("%q: MaxReceiveBytes %d, want %d", tt.yaml, got, tt.want)
		}
	}
}
