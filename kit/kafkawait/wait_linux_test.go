//go:build linux && cgo

package kafkawait

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/iov-platform/iov/kit/internal/kafkatest"
)

const topic = "kafkawait"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		v      string
		on     bool
		errHas string
	}{
		{"", true, ""},
		{"netpoll", true, ""},
		{"blocking", false, ""},
		{"Blocking", true, `IOV_KAFKA_POLL="Blocking": want netpoll or blocking`},
		{"off", true, `IOV_KAFKA_POLL="off"`},
	} {
		on, err := parse(tc.v)
		if on != tc.on || (err == nil) != (tc.errHas == "") || (err != nil && !strings.Contains(err.Error(), tc.errHas)) {
			t.Errorf("parse(%q) = %v, %v; want %v and an error with %q", tc.v, on, err, tc.on, tc.errHas)
		}
	}
}

// TestPollersWaitInTheNetworkPoller checks the mechanism: with the wrapper on, the
// producer's two pollers (delivery reports, logs) wait in Go, parked in the network poller
// and holding no P; turned off, they block in C. Either way every delivery report arrives,
// in order, and closing the producer leaves no descriptor behind.
func TestPollersWaitInTheNetworkPoller(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("on=%v", on), func(t *testing.T) {
			setForTest(t, on)
			c := kafkatest.Cluster(t, 1, topic)
			fds := openFDs(t)
			before := ReadStats()
			logs := make(chan kafka.LogEvent, 1000)
			p, err := kafka.NewProducer(&kafka.ConfigMap{
				"bootstrap.servers": kafkatest.Bootstrap(c), "enable.idempotence": true,
				"go.logs.channel.enable": true, "go.logs.channel": logs,
			})
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for range logs { //nolint:revive // drained so the log poller never blocks on it
				}
			}()
			produceAll(t, p, 200)

			// Both pollers are idle now: look at where they wait.
			want := []string{"kafka.poller(", "pollLogEvents("}
			waiting := func() []string {
				var got []string
				for _, g := range goroutines() {
					for _, w := range want {
						if strings.Contains(g, w) && strings.Contains(g, "kafkawaitGoWait") && strings.Contains(g, "[IO wait") {
							got = append(got, w)
						}
					}
				}
				return got
			}
			deadline := time.Now().Add(10 * time.Second)
			for on && len(waiting()) < len(want) && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if got := waiting(); on && len(got) != len(want) {
				t.Errorf("pollers waiting in the network poller: %v, want %v\n%s", got, want, strings.Join(goroutines(), "\n\n"))
			} else if !on && len(got) != 0 {
				t.Errorf("turned off, yet pollers wait in Go: %v", got)
			}
			s := ReadStats()
			if on && (s.Queues < before.Queues+2 || s.Waits == before.Waits) {
				t.Errorf("stats %+v after %+v: want two more queues and some waits", s, before)
			}
			if !on && s != before {
				t.Errorf("turned off, yet stats moved from %+v to %+v", before, s)
			}

			p.Close()
			leftNothing(t, fds)
		})
	}
}

// TestAdminRequestsLeaveNoDescriptors: every admin request polls a queue of its own (50 ms
// at a time) and destroys it; each that waited got a pipe, and gives it back.
func TestAdminRequestsLeaveNoDescriptors(t *testing.T) {
	setForTest(t, true)
	c := kafkatest.Cluster(t, 1, topic)
	fds := openFDs(t)
	before := ReadStats()
	a, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": kafkatest.Bootstrap(c)})
	if err != nil {
		t.Fatal(err)
	}
	const requests = 30
	for i := range requests {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := a.DescribeConfigs(ctx, []kafka.ConfigResource{{Type: kafka.ResourceTopic, Name: topic}})
		cancel()
		if err != nil || len(res) != 1 || res[0].Error.Code() != kafka.ErrNoError {
			t.Fatalf("request %d: %v %v", i, res, err)
		}
	}
	// A request whose answer is in its queue at the first poll needs no pipe; most wait.
	if s := ReadStats(); s.Queues == before.Queues {
		t.Errorf("none of %d requests waited in the network poller", requests)
	}
	a.Close()
	leftNothing(t, fds)
}

// TestConsumerPollsKeepTheirMeaning: a consumer's Poll with a timeout returns nothing once
// it has passed, returns the records in order as they come, and a commit (a poll with no
// timeout on a queue of its own) returns.
func TestConsumerPollsKeepTheirMeaning(t *testing.T) {
	setForTest(t, true)
	c := kafkatest.Cluster(t, 1, topic)
	bootstrap := kafkatest.Bootstrap(c)
	cons, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers": bootstrap, "group.id": "kafkawait", "auto.offset.reset": "earliest",
		"enable.auto.commit": false,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	if err := cons.Subscribe(topic, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if ev := cons.Poll(50); ev != nil {
		if _, ok := ev.(*kafka.Message); ok {
			t.Fatalf("a record from an empty topic: %v", ev)
		}
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("Poll(50) returned after %v", time.Since(start))
	}
	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	produceAll(t, p, n)
	p.Close()
	var last *kafka.Message
	for i := 0; i < n; {
		switch ev := cons.Poll(100).(type) {
		case *kafka.Message:
			if got, want := string(ev.Value), fmt.Sprint(i); got != want {
				t.Fatalf("record %d holds %q", i, got)
			}
			last = ev
			i++
		case kafka.Error:
			t.Fatal(ev)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%d of %d records after 30 s", i, n)
		}
	}
	if _, err := cons.CommitMessage(last); err != nil {
		t.Fatal(err)
	}
}

func produceAll(t *testing.T, p *kafka.Producer, n int) {
	t.Helper()
	dr := make(chan kafka.Event, n)
	tp := kafka.TopicPartition{Topic: new(string), Partition: 0}
	*tp.Topic = topic
	for i := range n {
		if err := p.Produce(&kafka.Message{TopicPartition: tp, Value: []byte(fmt.Sprint(i))}, dr); err != nil {
			t.Fatal(err)
		}
	}
	prev := kafka.Offset(-1)
	for i := range n {
		select {
		case ev := <-dr:
			m := ev.(*kafka.Message)
			if m.TopicPartition.Error != nil || m.TopicPartition.Offset <= prev || string(m.Value) != fmt.Sprint(i) {
				t.Fatalf("report %d: %v offset %v after %v, value %q", i, m.TopicPartition.Error, m.TopicPartition.Offset, prev, m.Value)
			}
			prev = m.TopicPartition.Offset
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d delivery reports after 30 s", i, n)
		}
	}
}

func setForTest(t *testing.T, on bool) {
	v := ModeBlocking
	if on {
		v = ModeNetpoll
	}
	if err := configure(v); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = configure(os.Getenv(EnvVar)) })
}

func goroutines() []string {
	buf := make([]byte, 1<<20)
	return strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
}

func filesOpen() int {
	mu.Lock()
	defer mu.Unlock()
	return len(files)
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// leftNothing checks, after a client's Close, that the process holds as many descriptors
// as before (waiting for librdkafka to close its sockets as its threads end) and that no
// pipe is left in the table.
func leftNothing(t *testing.T, before int) {
	t.Helper()
	if n := filesOpen(); n != 0 {
		t.Errorf("%d pipe read ends still open after Close", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for openFDs(t) > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := openFDs(t); n > before {
		t.Errorf("%d descriptors open, %d before", n, before)
	}
}
