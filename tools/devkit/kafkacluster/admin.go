package kafkacluster

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// client returns a franz-go client on the running nodes' PLAINTEXT listeners.
func (c *Cluster) client() (*kgo.Client, error) {
	var seeds []string
	for _, n := range c.Nodes {
		if n.Running() {
			seeds = append(seeds, n.Addr())
		}
	}
	if len(seeds) == 0 {
		return nil, errors.New("no node is running")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequestRetries(2), kgo.RetryTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	return cl, nil
}

// WaitReady waits (up to Options.ReadyTimeout) until every running node is registered and
// unfenced, as seen by each running node, and the quorum has a leader.
func (c *Cluster) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.ReadyTimeout)
	defer cancel()
	var last error
	for {
		if last = c.ready(ctx); last == nil {
			return nil
		}
		for _, n := range c.Nodes {
			if n.up && !n.Running() {
				return fmt.Errorf("node %d exited (%v); see %s", n.ID, n.cmd.ProcessState, filepath.Join(n.dir, "logs"))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka cluster not ready: %w (last: %v)", ctx.Err(), last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Cluster) ready(ctx context.Context) error {
	want := map[int32]bool{}
	for _, n := range c.Nodes {
		if n.Running() {
			want[n.ID] = true
		}
	}
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(n.Addr()), kgo.RequestRetries(0), kgo.DialTimeout(time.Second))
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{}
		resp, err := req.RequestWith(rctx, cl)
		cancel()
		cl.Close()
		if err != nil {
			return fmt.Errorf("node %d metadata: %w", n.ID, err)
		}
		seen := map[int32]bool{}
		for _, b := range resp.Brokers {
			seen[b.NodeID] = true
		}
		for id := range want {
			if !seen[id] {
				return fmt.Errorf("node %d does not list broker %d", n.ID, id)
			}
		}
	}
	if _, err := c.activeController(ctx); err != nil {
		return err
	}
	return nil
}

// retry calls f until it succeeds or ctx ends: a busy or electing cluster answers admin
// requests late or with a retriable error, so one attempt is not an answer.
func retry[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	for {
		v, err := f(ctx)
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// ActiveController returns the id of the KRaft quorum's leader (the active controller), asked
// with DescribeQuorum on the metadata partition; it retries until ctx ends.
func (c *Cluster) ActiveController(ctx context.Context) (int32, error) {
	return retry(ctx, c.activeController)
}

func (c *Cluster) activeController(ctx context.Context) (int32, error) {
	cl, err := c.client()
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrDescribeQuorumRequest()
	t := kmsg.NewDescribeQuorumRequestTopic()
	t.Topic = "__cluster_metadata"
	t.Partitions = []kmsg.DescribeQuorumRequestTopicPartition{kmsg.NewDescribeQuorumRequestTopicPartition()}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return 0, fmt.Errorf("describe quorum: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return 0, fmt.Errorf("describe quorum: %w", err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return 0, fmt.Errorf("describe quorum: %w", err)
			}
			if p.LeaderID >= 0 {
				return p.LeaderID, nil
			}
		}
	}
	return 0, errors.New("describe quorum: no leader")
}

// TopicSpec describes a topic for CreateTopics.
type TopicSpec struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	Configs           map[string]string
}

// CreateTopics creates the topics (an existing one is not an error) and waits until every
// partition has a leader.
func (c *Cluster) CreateTopics(ctx context.Context, topics ...TopicSpec) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 30000
	for _, ts := range topics {
		t := kmsg.NewCreateTopicsRequestTopic()
		t.Topic, t.NumPartitions, t.ReplicationFactor = ts.Name, ts.Partitions, ts.ReplicationFactor
		for k, v := range ts.Configs {
			cfg := kmsg.NewCreateTopicsRequestTopicConfig()
			cfg.Name, cfg.Value = k, kmsg.StringPtr(v)
			t.Configs = append(t.Configs, cfg)
		}
		req.Topics = append(req.Topics, t)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	var names []string
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.Topic, err)
		}
		names = append(names, t.Topic)
	}
	for {
		ok, err := c.allLed(ctx, cl, names)
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics without leaders: %w (last: %v)", ctx.Err(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *Cluster) allLed(ctx context.Context, cl *kgo.Client, topics []string) (bool, error) {
	parts, err := c.partitions(ctx, cl, topics...)
	if err != nil {
		return false, err
	}
	for _, p := range parts {
		if p.Leader < 0 {
			return false, fmt.Errorf("%s/%d has no leader", p.Topic, p.Partition)
		}
	}
	return len(parts) > 0, nil
}

// Partition is one partition's leadership as the cluster reports it.
type Partition struct {
	Topic     string
	Partition int32
	Leader    int32 // -1: none
	Replicas  []int32
	ISR       []int32
}

// Partitions returns the partitions of the topics.
func (c *Cluster) Partitions(ctx context.Context, topics ...string) ([]Partition, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return c.partitions(ctx, cl, topics...)
}

func (c *Cluster) partitions(ctx context.Context, cl *kgo.Client, topics ...string) ([]Partition, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	var out []Partition
	for _, t := range resp.Topics {
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return nil, fmt.Errorf("metadata %s: %w", *t.Topic, err)
		}
		for _, p := range t.Partitions {
			leader := p.Leader
			if kerr.ErrorForCode(p.ErrorCode) != nil {
				leader = -1
			}
			out = append(out, Partition{Topic: *t.Topic, Partition: p.Partition, Leader: leader, Replicas: p.Replicas, ISR: p.ISR})
		}
	}
	return out, nil
}

// Leader returns the id of the node leading topic/partition, retrying until the partition has
// a leader or ctx ends.
func (c *Cluster) Leader(ctx context.Context, topic string, partition int32) (int32, error) {
	return retry(ctx, func(ctx context.Context) (int32, error) { return c.leader(ctx, topic, partition) })
}

func (c *Cluster) leader(ctx context.Context, topic string, partition int32) (int32, error) {
	parts, err := c.Partitions(ctx, topic)
	if err != nil {
		return 0, err
	}
	for _, p := range parts {
		if p.Partition == partition {
			if p.Leader < 0 {
				return 0, fmt.Errorf("%s/%d has no leader", topic, partition)
			}
			return p.Leader, nil
		}
	}
	return 0, fmt.Errorf("%s/%d not found", topic, partition)
}
