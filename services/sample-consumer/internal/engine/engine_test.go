package engine

import (
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

func TestDescribe(t *testing.T) {
	a, b := "iov.vehicle.telemetry", "iov.vehicle.events"
	tps := []kafka.TopicPartition{
		{Topic: &a, Partition: 2, Offset: 17},
		{Topic: &b, Partition: 1, Offset: kafka.OffsetInvalid},
		{Topic: &a, Partition: 0, Offset: 3},
	}
	if got, want := describe(tps, false), "iov.vehicle.events[1] iov.vehicle.telemetry[0 2]"; got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
	if got, want := describe(tps, true), "iov.vehicle.telemetry[0@3 2@17]"; got != want {
		t.Errorf("describe with offsets = %q, want %q", got, want)
	}
}

func TestJitterStaysInRange(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, time.Millisecond, time.Second} {
		for range 100 {
			if j := jitter(d); j < d/2 || j > d {
				t.Fatalf("jitter(%v) = %v", d, j)
			}
		}
	}
}
