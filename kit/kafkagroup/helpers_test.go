package kafkagroup

import (
	"errors"
	"slices"
	"strings"
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
	if got, want := Describe(tps, false), "iov.vehicle.events[1] iov.vehicle.telemetry[0 2]"; got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
	if got, want := Describe(tps, true), "iov.vehicle.telemetry[0@3 2@17]"; got != want {
		t.Errorf("describe with offsets = %q, want %q", got, want)
	}
	if got := Describe(nil, false); got != "" {
		t.Errorf("describe(nil) = %q", got)
	}
}

func message(topic string, partition int32, offset int64) *kafka.Message {
	return &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: partition, Offset: kafka.Offset(offset)}}
}

func TestWhereAndLogAttrs(t *testing.T) {
	m := message("iov.vehicle.commands", 3, 42)
	if got := Where(m); got != "iov.vehicle.commands/3@42" {
		t.Errorf("Where = %q", got)
	}
	want := []any{"topic", "iov.vehicle.commands", "partition", int32(3), "offset", int64(42)}
	if got := LogAttrs(m); !slices.Equal(got, want) {
		t.Errorf("LogAttrs = %#v, want %#v", got, want)
	}
}

func TestDeadLetterHeaders(t *testing.T) {
	m := message("iov.vehicle.telemetry", 2, 17)
	m.Timestamp = time.UnixMilli(1700000000123)
	m.Headers = []kafka.Header{{Key: "trace-id", Value: []byte("t1")}}

	hs := DeadLetterHeaders(m, "g", "decode", 0, errors.New("bad magic"))
	var keys []string
	got := map[string]string{}
	for _, h := range hs {
		keys = append(keys, h.Key)
		got[h.Key] = string(h.Value)
	}
	wantKeys := []string{"trace-id", HeaderGroup, HeaderError, HeaderStage, HeaderOffset, HeaderPartition, HeaderTimestamp, HeaderTopic}
	if !slices.Equal(keys, wantKeys) {
		t.Fatalf("keys %v, want %v (own headers first, then in key order, no attempts)", keys, wantKeys)
	}
	if got[HeaderError] != "bad magic" || got[HeaderStage] != "decode" || got[HeaderTopic] != "iov.vehicle.telemetry" ||
		got[HeaderPartition] != "2" || got[HeaderOffset] != "17" || got[HeaderTimestamp] != "1700000000123" || got[HeaderGroup] != "g" {
		t.Fatalf("headers %v", got)
	}
	if len(m.Headers) != 1 || cap(m.Headers) != 1 {
		t.Fatalf("the record's own headers changed: %v", m.Headers)
	}

	long := strings.Repeat("x", MaxErrorHeader+10)
	hs = DeadLetterHeaders(m, "g", "handler", 3, errors.New(long))
	got = map[string]string{}
	for _, h := range hs {
		got[h.Key] = string(h.Value)
	}
	if got[HeaderAttempts] != "3" || got[HeaderError] != long[:MaxErrorHeader] {
		t.Fatalf("attempts %q, error of %d bytes", got[HeaderAttempts], len(got[HeaderError]))
	}
}

func TestConfigMap(t *testing.T) {
	cm := configMap(Config{
		ClientID:         "svc",
		BootstrapServers: "k:9092",
		GroupID:          "g",
		Properties: map[string]string{
			"auto.offset.reset":        "latest", // a default: may change
			"session.timeout.ms":       "6000",
			"enable.auto.offset.store": "true", // protected
			"enable.auto.commit":       "false",
			"bootstrap.servers":        "other:1",
			"group.id":                 "other",
			"acks":                     "all", // dropped
		},
		Drop: []string{"acks", "linger.ms"},
	})
	want := kafka.ConfigMap{
		"client.id":                     "svc",
		"auto.offset.reset":             "latest",
		"partition.assignment.strategy": "cooperative-sticky",
		"session.timeout.ms":            "6000",
		"enable.auto.commit":            "true",
		"enable.auto.offset.store":      "false",
		"bootstrap.servers":             "k:9092",
		"group.id":                      "g",
		"go.logs.channel.enable":        true,
	}
	if len(cm) != len(want) {
		t.Fatalf("config %v, want %v", cm, want)
	}
	for k, v := range want {
		if cm[k] != v {
			t.Errorf("%s = %v, want %v", k, cm[k], v)
		}
	}
}
