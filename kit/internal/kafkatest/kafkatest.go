// Package kafkatest has the kit's test helpers: an in-process Kafka cluster and a log
// buffer that several goroutines write to.
package kafkatest

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Cluster starts a one-broker in-process Kafka (kfake) holding topics with partitions
// each; it is closed when the test ends.
func Cluster(t testing.TB, partitions int32, topics ...string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// Bootstrap is c's bootstrap.servers setting.
func Bootstrap(c *kfake.Cluster) string { return strings.Join(c.ListenAddrs(), ",") }

// LogBuffer keeps log lines written from several goroutines.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
