package stack

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReadAllReadsToTheEndOffsets: with want <= 0, ReadAll returns every record the topics
// hold when it is called, whatever the poll bound (a poll that comes back empty is not the
// end), nothing for an empty or missing topic, and an error, not a partial result, when its
// context ends first.
func TestReadAllReadsToTheEndOffsets(t *testing.T) {
	st, err := Start(Options{Partitions: 3, Topics: []string{"full", "empty"}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(st.KafkaBootstrap()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 300
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: "full", Key: fmt.Appendf(nil, "k%d", i%7), Value: fmt.Appendf(nil, "%d", i)})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		topics []string
		idle   time.Duration
		want   int
	}{
		{"every record, long polls", []string{"full"}, 2 * time.Second, n},
		{"every record, polls shorter than a fetch", []string{"full"}, time.Microsecond, n},
		{"two topics, one empty", []string{"full", "empty"}, time.Millisecond, n},
		{"empty topic", []string{"empty"}, time.Second, 0},
		{"missing topic", []string{"no-such-topic"}, time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := ReadAll(ctx, st.KafkaBootstrap(), 0, tc.idle, tc.topics...)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, r := range got {
				seen[string(r.Value)] = true
			}
			if len(got) != tc.want || len(seen) != tc.want {
				t.Fatalf("read %d records (%d distinct), want %d", len(got), len(seen), tc.want)
			}
		})
	}
	t.Run("context ends first", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if got, err := ReadAll(ctx, st.KafkaBootstrap(), 0, time.Second, "full"); !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadAll with an ended context: %d records, err %v", len(got), err)
		}
	})
}
