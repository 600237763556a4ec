// Package e2e lets one end-to-end test body run against franz-go's in-process kfake and
// against a real Apache Kafka (kafkacluster), so both are held to the same assertions:
//
//	func TestX(t *testing.T) { e2e.Run(t, testX) }
//	func testX(t *testing.T, b e2e.Backend) { st := e2e.Start(t, b, stack.Options{...}); ... }
//
// The real-Kafka subtests skip unless IOV_REAL_KAFKA=1 (make test-kafka).
package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iov-platform/iov/tools/devkit/kafkacluster"
	"github.com/iov-platform/iov/tools/devkit/kafkacluster/kafkatest"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

// Backend is the Kafka a test runs against.
type Backend string

const (
	KFake     Backend = "kfake"      // franz-go's in-process fake
	RealKafka Backend = "real-kafka" // one Apache Kafka KRaft node (kafkacluster)
)

// Backends are all backends, in the order Run runs them.
var Backends = []Backend{KFake, RealKafka}

// Run runs body once per backend as subtests named after the backend.
func Run(t *testing.T, body func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range Backends {
		t.Run(string(b), func(t *testing.T) {
			if b == RealKafka {
				kafkatest.Skip(t)
			}
			body(t, b)
		})
	}
}

// Start starts a stack (Kafka and the srfake registry) on backend b and closes it at cleanup.
// On real Kafka, opts.Topics are created with opts.Partitions (default 6) partitions; other
// topics are auto-created as on kfake. opts.DataDir and opts.KafkaPort are kfake-only.
func Start(t testing.TB, b Backend, opts stack.Options) *stack.Stack {
	t.Helper()
	if b == RealKafka {
		if opts.Partitions == 0 {
			opts.Partitions = 6
		}
		c := kafkatest.Start(t, kafkacluster.Options{Nodes: 1, Properties: map[string]string{"num.partitions": fmt.Sprint(opts.Partitions)}})
		var specs []kafkacluster.TopicSpec
		for _, name := range opts.Topics {
			specs = append(specs, kafkacluster.TopicSpec{Name: name, Partitions: opts.Partitions, ReplicationFactor: 1})
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.CreateTopics(ctx, specs...); err != nil {
			t.Fatal(err)
		}
		opts.Bootstrap = c.Bootstrap()
	}
	st, err := stack.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}
