// Package stacktest starts the in-process Kafka + registry (stack) for a test and closes it
// when the test ends, and gives the test franz-go clients on that Kafka.
package stacktest

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/iov-platform/iov/tools/devkit/stack"
)

// Start starts a stack for t, failing t when it cannot, and closes it when t ends.
func Start(t testing.TB, opts stack.Options) *stack.Stack {
	t.Helper()
	st, err := stack.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// Client is a franz-go client on st's Kafka with opts, closed when t ends.
func Client(t testing.TB, st *stack.Stack, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(st.KafkaBootstrap())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
