package kafkacluster_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/iov-platform/iov/tools/devkit/kafkacluster"
	"github.com/iov-platform/iov/tools/devkit/kafkacluster/kafkatest"
)

// produce writes n records to topic with acks=all and returns the first error.
func produce(ctx context.Context, c *kafkacluster.Cluster, topic string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.Bootstrap(), ",")...), kgo.DefaultProduceTopic(topic), kgo.RecordRetries(20))
	if err != nil {
		return err
	}
	defer cl.Close()
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte{byte(i)}, Value: []byte("v")}).FirstErr(); err != nil {
			return err
		}
	}
	return nil
}

func count(ctx context.Context, c *kafkacluster.Cluster, topic string, want int) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(c.Bootstrap(), ",")...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0
	}
	defer cl.Close()
	got := 0
	for got < want && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		got += fs.NumRecords()
	}
	return got
}

// TestThreeNodeFaults: the harness finds partition leaders and the active controller, and a
// killed leader, a paused broker and a stopped controller are replaced while the records
// written before stay readable.
func TestThreeNodeFaults(t *testing.T) {
	c := kafkatest.Start(t, kafkacluster.Options{Nodes: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const topic = "harness"
	if err := c.CreateTopics(ctx, kafkacluster.TopicSpec{Name: topic, Partitions: 1, ReplicationFactor: 3, Configs: map[string]string{"min.insync.replicas": "2"}}); err != nil {
		t.Fatal(err)
	}
	parts, err := c.Partitions(ctx, topic)
	if err != nil || len(parts) != 1 || len(parts[0].Replicas) != 3 || len(parts[0].ISR) != 3 {
		t.Fatalf("partitions %+v, %v; want one partition on 3 replicas, all in sync", parts, err)
	}
	if err := produce(ctx, c, topic, 10); err != nil {
		t.Fatal(err)
	}

	leader, err := c.Leader(ctx, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Node(leader).Kill(); err != nil {
		t.Fatal(err)
	}
	next := waitLeader(ctx, t, c, topic, func(id int32) bool { return id != leader })
	t.Logf("leader %d killed, %d took over", leader, next)
	if err := c.Node(leader).Start(ctx); err != nil {
		t.Fatal(err)
	}

	ctl, err := c.ActiveController(ctx)
	if err != nil || c.Node(ctl) == nil {
		t.Fatalf("active controller %d, %v", ctl, err)
	}
	if err := c.Node(ctl).Stop(); err != nil {
		t.Fatal(err)
	}
	newCtl := waitFor(ctx, t, func() (int32, bool) {
		id, err := c.ActiveController(ctx)
		return id, err == nil && id != ctl
	})
	t.Logf("controller %d stopped, %d elected", ctl, newCtl)
	if err := c.Node(ctl).Start(ctx); err != nil {
		t.Fatal(err)
	}

	paused := c.Nodes[0]
	if err := paused.Pause(); err != nil {
		t.Fatal(err)
	}
	// The controller fences the paused broker after broker.session.timeout.ms and drops it
	// from the ISR; writes with min.insync.replicas=2 go on.
	waitFor(ctx, t, func() (int32, bool) {
		ps, err := c.Partitions(ctx, topic)
		return 0, err == nil && len(ps) == 1 && !slices.Contains(ps[0].ISR, paused.ID) && ps[0].Leader != paused.ID
	})
	if err := produce(ctx, c, topic, 10); err != nil {
		t.Fatal(err)
	}
	if err := paused.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}

	if killed := c.Stop(); len(killed) > 0 {
		t.Logf("nodes %v killed after %s without a quorum to approve their shutdown", killed, kafkacluster.QuorumGrace)
	}
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := count(ctx, c, topic, 20); got != 20 {
		t.Fatalf("read %d records after the faults, want 20", got)
	}
}

func waitLeader(ctx context.Context, t *testing.T, c *kafkacluster.Cluster, topic string, ok func(int32) bool) int32 {
	t.Helper()
	return waitFor(ctx, t, func() (int32, bool) {
		id, err := c.Leader(ctx, topic, 0)
		return id, err == nil && ok(id)
	})
}

func waitFor(ctx context.Context, t *testing.T, cond func() (int32, bool)) int32 {
	t.Helper()
	for {
		if v, ok := cond(); ok {
			return v
		}
		select {
		case <-ctx.Done():
			t.Fatalf("condition not reached: %v", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
