package kafkagroup

import (
	"maps"
	"slices"
	"strconv"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Headers a consumer adds to the copy of a record it dead-letters, after the record's own
// headers.
const (
	HeaderError     = "iov.error"            // why the record was rejected
	HeaderStage     = "iov.error.stage"      // the service's stage that rejected it
	HeaderAttempts  = "iov.error.attempts"   // attempts made, where the stage retries
	HeaderTopic     = "iov.source.topic"     // where the record was consumed from
	HeaderPartition = "iov.source.partition" // its partition
	HeaderOffset    = "iov.source.offset"    // its offset
	HeaderTimestamp = "iov.source.timestamp" // its timestamp, Unix milliseconds
	HeaderGroup     = "iov.consumer.group"   // the consumer group that rejected it
)

// MaxErrorHeader bounds the error text copied into HeaderError, in bytes.
const MaxErrorHeader = 1024

// DeadLetterHeaders returns the headers of m's copy on a dead-letter topic: m's own, then,
// in key order, why group rejected it (cause, stage, and attempts when above 0) and where
// it came from. m is not modified.
func DeadLetterHeaders(m *kafka.Message, group, stage string, attempts int, cause error) []kafka.Header {
	msg := cause.Error()
	if len(msg) > MaxErrorHeader {
		msg = msg[:MaxErrorHeader]
	}
	add := map[string]string{
		HeaderError:     msg,
		HeaderStage:     stage,
		HeaderTopic:     *m.TopicPartition.Topic,
		HeaderPartition: strconv.Itoa(int(m.TopicPartition.Partition)),
		HeaderOffset:    strconv.FormatInt(int64(m.TopicPartition.Offset), 10),
		HeaderTimestamp: strconv.FormatInt(m.Timestamp.UnixMilli(), 10),
		HeaderGroup:     group,
	}
	if attempts > 0 {
		add[HeaderAttempts] = strconv.Itoa(attempts)
	}
	headers := slices.Clone(m.Headers)
	for _, k := range slices.Sorted(maps.Keys(add)) {
		headers = append(headers, kafka.Header{Key: k, Value: []byte(add[k])})
	}
	return headers
}
