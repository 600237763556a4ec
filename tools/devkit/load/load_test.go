package load

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/grpc"

	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

// rawProvider is a minimal HookProvider that writes each payload to Kafka keyed by the
// client id. dropEvery > 0 makes it acknowledge but not write every n-th message, and
// duplicate makes it write every message twice, so the verifier can be shown to catch both.
type rawProvider struct {
	exhookv2.UnimplementedHookProviderServer
	cl        *kgo.Client
	topic     string
	dropEvery int64
	duplicate bool
	n         atomic.Int64
}

func (p *rawProvider) OnProviderLoaded(context.Context, *exhookv2.ProviderLoadedRequest) (*exhookv2.LoadedResponse, error) {
	return &exhookv2.LoadedResponse{Hooks: []*exhookv2.HookSpec{{Name: "message.publish", Topics: []string{"#"}}}}, nil
}

func (p *rawProvider) OnMessagePublish(ctx context.Context, req *exhookv2.MessagePublishRequest) (*exhookv2.ValuedResponse, error) {
	n := p.n.Add(1)
	if p.dropEvery == 0 || n%p.dropEvery != 0 {
		rec := &kgo.Record{Topic: p.topic, Key: []byte(req.GetMessage().GetFrom()), Value: req.GetMessage().GetPayload()}
		if err := p.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			return nil, err
		}
		if p.duplicate {
			if err := p.cl.ProduceSync(ctx, &kgo.Record{Topic: p.topic, Key: rec.Key, Value: rec.Value}).FirstErr(); err != nil {
				return nil, err
			}
		}
	}
	return &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}, nil
}

func serve(t *testing.T, p *rawProvider) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	exhookv2.RegisterHookProviderServer(srv, p)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func TestRunVerifiesAgainstKafka(t *testing.T) {
	st, err := stack.Start(stack.Options{Partitions: 3, Topics: []string{"raw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.KafkaBootstrap()), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	tests := []struct {
		name           string
		dropEvery      int64
		duplicate      bool
		wantLost       int
		wantDuplicates int
	}{
		{"faithful provider", 0, false, 0, 0},
		{"provider that drops every 7th", 7, false, 60 / 7, 0},
		{"provider that writes twice", 0, true, 0, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &rawProvider{cl: cl, topic: "raw", dropEvery: tt.dropEvery, duplicate: tt.duplicate}
			rep, err := Run(context.Background(), Options{
				Addr: serve(t, p), Vehicles: 6, Messages: 10, Pool: 2, RequestTimeout: 5 * time.Second,
				Bootstrap: st.KafkaBootstrap(), KafkaTopic: "raw", RawRecords: true, VerifyWait: 3 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Sent != 60 || rep.Acked != 60 || rep.Errors != 0 {
				t.Fatalf("sent=%d acked=%d errors=%d", rep.Sent, rep.Acked, rep.Errors)
			}
			if !rep.Verified || rep.Lost != tt.wantLost || rep.Duplicates != tt.wantDuplicates || rep.Consumed != 60-tt.wantLost {
				t.Fatalf("report %+v", rep)
			}
			if rep.OK() != (tt.wantLost == 0 && tt.wantDuplicates == 0) {
				t.Fatalf("OK() = %v for %+v", rep.OK(), rep)
			}
			if rep.P50 <= 0 || rep.P99 < rep.P50 || rep.Max < rep.P99 {
				t.Fatalf("latencies p50=%s p99=%s max=%s", rep.P50, rep.P99, rep.Max)
			}
		})
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, o := range []Options{
		{},
		{Addr: "x:1", Vehicles: 1},
		{Addr: "x:1", Vehicles: 1, Messages: 1, TopicTemplate: "no/vehicle"},
		{Addr: "x:1", Vehicles: 1, Messages: 1, Bootstrap: "k:9092"},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("Run(%+v) accepted", o)
		}
	}
}
