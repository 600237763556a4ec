package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/iov-platform/iov/tools/devkit/stack"
)

// envelope is the JSON record value the Python bridge writes. encoding/json decodes the
// base64 payload string into the []byte.
type envelope struct {
	ID        string `json:"id"`
	ClientID  string `json:"clientid"`
	Topic     string `json:"topic"`
	QoS       uint32 `json:"qos"`
	Payload   []byte `json:"payload"`
	Timestamp uint64 `json:"timestamp"`
	Node      string `json:"node"`
}

// loadPayload mirrors the JSON payload load.Run publishes (its type is unexported).
type loadPayload struct {
	Run     string `json:"run"`
	Vehicle string `json:"vin"`
	Seq     int    `json:"seq"`
}

// verification is what the bridge's Kafka topic holds for the runs not skipped.
type verification struct {
	runs       map[string]bool // load run ids found
	found      int             // distinct (vehicle, seq) records
	duplicates int
	outOfOrder int // records with a lower seq than the vehicle's previous record
}

// lost is how many of acked messages are missing. load.Run does not expose which calls
// were acknowledged, so with failed calls this is a lower bound.
func (v verification) lost(acked int) int { return max(0, acked-v.found) }

// checkEnvelopes checks the records of one topic, skipping load runs in skip. It fails on a
// record that is not a well-formed envelope of a load message, whose key is not the client
// id, or whose client id is not the vehicle, and when it sees more than one new run.
func checkEnvelopes(recs []stack.Record, skip map[string]bool) (verification, error) {
	v := verification{runs: map[string]bool{}}
	found := map[string]map[int]bool{}
	last := map[string]int{}
	for _, r := range recs {
		var env envelope
		if err := json.Unmarshal(r.Value, &env); err != nil {
			return v, fmt.Errorf("record %s/%d@%d: not a JSON envelope: %w", r.Topic, r.Partition, r.Offset, err)
		}
		var p loadPayload
		if err := json.Unmarshal(env.Payload, &p); err != nil || p.Run == "" {
			return v, fmt.Errorf("record %s/%d@%d: payload is not a load message: %q", r.Topic, r.Partition, r.Offset, env.Payload)
		}
		if skip[p.Run] {
			continue
		}
		if string(r.Key) != env.ClientID || env.ClientID != p.Vehicle {
			return v, fmt.Errorf("record %s/%d@%d: key %q, clientid %q, vehicle %q", r.Topic, r.Partition, r.Offset, r.Key, env.ClientID, p.Vehicle)
		}
		if env.ID == "" || env.Topic == "" || env.Node == "" || env.Timestamp == 0 {
			return v, fmt.Errorf("record %s/%d@%d: incomplete envelope %s", r.Topic, r.Partition, r.Offset, r.Value)
		}
		v.runs[p.Run] = true
		if found[p.Vehicle] == nil {
			found[p.Vehicle] = map[int]bool{}
		}
		if found[p.Vehicle][p.Seq] {
			v.duplicates++
			continue
		}
		found[p.Vehicle][p.Seq] = true
		v.found++
		if prev, ok := last[p.Vehicle]; ok && p.Seq < prev {
			v.outOfOrder++
		}
		last[p.Vehicle] = p.Seq
	}
	if len(v.runs) > 1 {
		return v, fmt.Errorf("records of %d load runs, want 1: %v", len(v.runs), v.runs)
	}
	return v, nil
}

// verifyEnvelopes reads the bridge's topic until it holds acked distinct messages of one new
// run (or wait passes) and checks them.
func verifyEnvelopes(ctx context.Context, bootstrap, topic string, skip map[string]bool, acked int, wait time.Duration) (verification, error) {
	deadline := time.Now().Add(wait)
	for {
		rctx, cancel := context.WithDeadline(ctx, deadline)
		recs, err := stack.ReadAll(rctx, bootstrap, 0, 2*time.Second, topic)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return verification{}, fmt.Errorf("verify %s: %w", topic, err)
		}
		v, err := checkEnvelopes(recs, skip)
		if err != nil {
			return v, fmt.Errorf("verify %s: %w", topic, err)
		}
		if v.found >= acked || time.Now().After(deadline) || ctx.Err() != nil {
			return v, nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}
