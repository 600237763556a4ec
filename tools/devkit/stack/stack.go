// Package stack runs the platform's backing services in-process for tests, the demo and load
// runs: a Kafka cluster (franz-go's kfake) and a Confluent-compatible schema registry
// (franz-go's srfake). Both speak the real wire protocols, so the services under test use
// their production clients (librdkafka, srclient) against them.
package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/iov-platform/iov/tools/devkit/compatsr"
)

// Options configures Start. Zero values pick free loopback ports.
type Options struct {
	KafkaPort    int         // 0: any free port
	RegistryAddr string      // "": 127.0.0.1:0
	Partitions   int32       // partitions of every topic; default 6
	Topics       []string    // created up front; others are auto-created
	DataDir      string      // kfake persistence, so a restarted cluster keeps its records
	KafkaOpts    []kfake.Opt // more kfake options, e.g. EnableSASL, User, TLS
	// Bootstrap, when set, is an external Kafka (e.g. a kafkacluster) used instead of kfake;
	// only the registry is started, and StopKafka/StartKafka must not be called.
	Bootstrap string
	// EnforceCompat makes the registry refuse incompatible schemas as Confluent's does
	// (compatsr); srfake alone accepts everything.
	EnforceCompat bool
}

// Stack is a running Kafka + registry pair.
type Stack struct {
	opts     Options
	Kafka    *kfake.Cluster
	Registry *srfake.Registry
	regSrv   *http.Server
	regLn    net.Listener
}

// Start launches both services.
func Start(opts Options) (*Stack, error) {
	if opts.Partitions == 0 {
		opts.Partitions = 6
	}
	s := &Stack{opts: opts}
	if opts.Bootstrap == "" {
		if err := s.StartKafka(); err != nil {
			return nil, err
		}
	}
	if err := s.startRegistry(); err != nil {
		s.closeKafka()
		return nil, err
	}
	return s, nil
}

// StartKafka (re)starts the Kafka cluster on the same port, e.g. after StopKafka in an
// outage test. With Options.DataDir the records written before survive.
func (s *Stack) StartKafka() error {
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(int(s.opts.Partitions)),
	}
	if s.opts.KafkaPort != 0 {
		kopts = append(kopts, kfake.Ports(s.opts.KafkaPort))
	}
	if len(s.opts.Topics) > 0 {
		kopts = append(kopts, kfake.SeedTopics(s.opts.Partitions, s.opts.Topics...))
	}
	if s.opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(s.opts.DataDir))
	}
	c, err := kfake.NewCluster(append(kopts, s.opts.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("start kafka: %w", err)
	}
	s.Kafka = c
	if s.opts.KafkaPort == 0 {
		_, port, _ := net.SplitHostPort(c.ListenAddrs()[0])
		fmt.Sscan(port, &s.opts.KafkaPort)
	}
	return nil
}

// StopKafka closes the Kafka cluster; its port refuses connections until StartKafka.
func (s *Stack) StopKafka() { s.Kafka.Close() }

func (s *Stack) startRegistry() error {
	addr := s.opts.RegistryAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("start registry: %w", err)
	}
	// srfake.New also starts an httptest server; we serve its handler on our own listener
	// so that the address can be fixed for the demo.
	s.Registry = srfake.New()
	s.regLn = ln
	handler := s.Registry.Handler()
	if s.opts.EnforceCompat {
		handler = compatsr.New(s.Registry)
	}
	s.regSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = s.regSrv.Serve(ln) }()
	return nil
}

// KafkaBootstrap is the bootstrap.servers string for clients.
func (s *Stack) KafkaBootstrap() string {
	if s.opts.Bootstrap != "" {
		return s.opts.Bootstrap
	}
	return fmt.Sprintf("127.0.0.1:%d", s.opts.KafkaPort)
}

func (s *Stack) closeKafka() {
	if s.Kafka != nil {
		s.Kafka.Close()
	}
}

// RegistryURL is the registry's base URL.
func (s *Stack) RegistryURL() string { return "http://" + s.regLn.Addr().String() }

// Close stops both services.
func (s *Stack) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.regSrv.Shutdown(ctx)
	s.Registry.Close()
	s.closeKafka()
}

// Record is one Kafka record read back by ReadAll.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string
}

// ReadAll reads records of the topics from the start (no consumer group). With want > 0 it
// stops once it has seen want records, or when ctx ends. With want <= 0 it reads every record
// the topics hold when it is called: it lists each partition's end offset first and returns
// once it has read up to all of them (a topic that does not exist yet is empty), or when ctx
// ends, with ctx's error. Each poll waits on ctx itself: a poll bounded by a shorter deadline
// returns at once, without the records the client has buffered, once that deadline has passed
// by the time the poll starts (franz-go checks the context first), so a short enough bound
// could poll forever and read nothing. A read cut short by ctx always returns an
// error, so a partial result cannot pass for the topic's content. Transient errors (see
// transient: a broker restarting, a leader being elected) are retried until ctx ends; this is
// the one place that retries a read, so callers bound the wait with ctx alone.
func ReadAll(ctx context.Context, bootstrap string, want int, topics ...string) ([]Record, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(bootstrap, ",")...),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
		// After a failed metadata load (every broker restarting) the consumer tries again
		// after this, not after kgo's default 5 s.
		kgo.MetadataMinAge(250*time.Millisecond),
	)
	if err != nil {
		return nil, fmt.Errorf("read client: %w", err)
	}
	defer cl.Close()
	var ends, read map[string]map[int32]int64
	if want <= 0 {
		if ends, err = endOffsets(ctx, cl, topics); err != nil {
			return nil, err
		}
		read = map[string]map[int32]int64{}
	}
	var out []Record
	for want > 0 && len(out) < want || want <= 0 && !reached(read, ends) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if fs.IsClientClosed() {
			return out, errors.New("read client closed")
		}
		for _, fe := range fs.Errors() {
			if !transient(fe.Err) {
				return out, fmt.Errorf("fetch %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			h := make(map[string]string, len(r.Headers))
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			out = append(out, Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Headers: h})
			if read != nil {
				if read[r.Topic] == nil {
					read[r.Topic] = map[int32]int64{}
				}
				read[r.Topic][r.Partition] = r.Offset + 1
			}
		})
	}
	return out, nil
}

// reached reports whether every partition in ends has been read up to its end offset.
// (Our producers are idempotent, not transactional: no control record holds an offset.)
func reached(read, ends map[string]map[int32]int64) bool {
	for topic, parts := range ends {
		for p, end := range parts {
			if read[topic][p] < end {
				return false
			}
		}
	}
	return true
}

// transient is ReadAll's one retry policy: the error will likely go away by itself. That is
// a retriable Kafka error (a leader being elected), an error kgo retries on a connection (a
// broker closing it), and any dial error but a host that does not exist: a broker that is
// restarting refuses connections until it listens again. kgo.IsRetryableBrokerErr leaves
// refused dials out on purpose, and kgo does not retry them for a request pinned to a
// partition leader (kadm's ListOffsets), so kadm returns them, bare from a metadata request
// or inside *kadm.ShardErrors (whose Unwrap exposes each shard's error to errors.As).
func transient(err error) bool {
	if kerr.IsRetriable(err) || kgo.IsRetryableBrokerErr(err) {
		return true
	}
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) && op.Op == "dial" && !(errors.As(err, &dns) && dns.IsNotFound)
}

// endOffsets lists the end offset (the high watermark) of every non-empty partition of
// topics, retrying transient errors (see transient) until ctx ends. A topic that does not
// exist has none.
func endOffsets(ctx context.Context, cl *kgo.Client, topics []string) (map[string]map[int32]int64, error) {
	for {
		listed, err := kadm.NewClient(cl).ListEndOffsets(ctx, topics...)
		ends := map[string]map[int32]int64{}
		listed.Each(func(o kadm.ListedOffset) {
			switch {
			case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			case o.Err != nil:
				err = errors.Join(err, fmt.Errorf("end offset %s/%d: %w", o.Topic, o.Partition, o.Err))
			case o.Offset > 0:
				if ends[o.Topic] == nil {
					ends[o.Topic] = map[int32]int64{}
				}
				ends[o.Topic][o.Partition] = o.Offset
			}
		})
		if err == nil || !transient(err) {
			return ends, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
