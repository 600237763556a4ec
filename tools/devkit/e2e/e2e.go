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
	"github.com/iov-platform/iov/tools/devkit/stack/stacktest"
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
		c := kafkatest.Start(t, kafkacluster.Options{Nodes: 1, Properties: partitions(&opts)})
		opts.Bootstrap = c.Bootstrap()
		createTopics(t, c, opts)
	}
	return stacktest.Start(t, opts)
}

// StartSecure starts one real Kafka node with a SASL_SSL (SCRAM-SHA-512) listener for users,
// and the registry. The stack's KafkaBootstrap is the PLAINTEXT listener, for the test's own
// clients; give the service under test sc.SecureBootstrap() and sc.ClientProperties(...).
func StartSecure(t testing.TB, users map[string]string, opts stack.Options) (*stack.Stack, *kafkatest.SecureCluster) {
	t.Helper()
	sc := kafkatest.StartSecure(t, 1, users, partitions(&opts))
	opts.Bootstrap = sc.Bootstrap()
	createTopics(t, sc.Cluster, opts)
	return stacktest.Start(t, opts), sc
}

// partitions defaults opts.Partitions and returns the broker setting that gives
// auto-created topics that many, as on kfake.
func partitions(opts *stack.Options) map[string]string {
	if opts.Partitions == 0 {
		opts.Partitions = 6
	}
	return map[string]string{"num.partitions": fmt.Sprint(opts.Partitions)}
}

func createTopics(t testing.TB, c *kafkacluster.Cluster, opts stack.Options) {
	t.Helper()
	var specs []kafkacluster.TopicSpec
	for _, name := range opts.Topics {
		specs = append(specs, kafkacluster.TopicSpec{Name: name, Partitions: opts.Partitions, ReplicationFactor: int16(len(c.Nodes))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateTopics(ctx, specs...); err != nil {
		t.Fatal(err)
	}
}
