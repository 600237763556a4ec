// Package load drives an ExHook provider like a fleet behind EMQX and checks, from Kafka,
// that every acknowledged message arrived once and in order per vehicle.
package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/iov-platform/iov/schemas"
	"github.com/iov-platform/iov/schemas/serde"
	"github.com/iov-platform/iov/tools/devkit/emqxsim"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

// Options describes one load run.
type Options struct {
	Addr           string        // HookProvider address
	Vehicles       int           // simulated vehicles, each publishing in sequence
	Messages       int           // messages per vehicle
	Pool           int           // gRPC connections (EMQX exhook pool_size)
	RequestTimeout time.Duration // EMQX request_timeout
	TopicTemplate  string        // MQTT topic; %s is the vehicle id
	PayloadBytes   int           // approximate JSON payload size
	QoS            uint32
	// Interval is a pause between one vehicle's messages (0: back to back), to spread a run
	// over a window such as a rolling restart.
	Interval time.Duration
	// Client, when set, is the simulated EMQX to publish through (its mode, pool and
	// deadline); Addr, Pool and RequestTimeout are then unused.
	Client *emqxsim.Client
	// PerStream, when set, replaces Client: message i of every vehicle goes through
	// PerStream[i%len], as a proxy that balances each HTTP/2 stream (not each connection)
	// over producer pods would send it.
	PerStream []*emqxsim.Client
	// Rate, when positive, is a fixed offered rate in msg/s over all vehicles (open loop):
	// vehicle v sends message n at start + v/Rate + n*Vehicles/Rate, at once when it is
	// late, and a latency counts from that scheduled time, so a slow answer cannot hide the
	// wait it causes. Interval is then ignored. The report also gives the latency from the
	// actual send and how late the sends were (SentP50, SentP99, SendLagP99): what the load
	// tool's own process added on the way out.
	Rate float64
	// Answered, when set, is called once every message was answered, before the Kafka
	// verification (a measuring tool reads the server's CPU there).
	Answered func()

	// Verification: read the Kafka topic back and match what was acknowledged.
	Bootstrap   string // empty: no verification
	RegistryURL string
	KafkaTopic  string
	VerifyWait  time.Duration // how long to wait for records to arrive
	// Extract returns the MQTT payload a record carries, or an error for a record that is not
	// what the provider should have written. Nil: the producer's Avro VehicleMessage envelope,
	// decoded through the registry at RegistryURL, whose vehicle_id must equal the key.
	Extract func(key, value []byte) (payload []byte, err error)
	// Unkeyed skips the key and order checks, for a provider that does not key its records
	// by the vehicle (a peer bridge keys them by the message id and spreads a vehicle over
	// partitions): lost and duplicates are still counted, OutOfOrder stays 0.
	Unkeyed bool
}

// RawPayload is an Extract for providers that write the MQTT payload unchanged.
func RawPayload(_, value []byte) ([]byte, error) { return value, nil }

// Report is the outcome of a run.
type Report struct {
	Sent, Acked, Errors int
	Elapsed             time.Duration
	P50, P90, P99, Max  time.Duration
	LongestStall        time.Duration // longest time a vehicle went without an acknowledgement
	Verified            bool
	Consumed            int // distinct acknowledged messages of this run found in Kafka
	Lost                int // acknowledged but not in Kafka
	// RoutedLost counts every message sent, acknowledged or not, that is not in Kafka: EMQX
	// publishes a message to its subscribers whether the hook call succeeded or failed
	// (failed_action deny and ignore alike), so these are the messages the platform lost.
	RoutedLost int
	Duplicates int // acknowledged or not, found at two or more offsets
	// ReadTwice counts records the verifier's reader returned twice at the same offset (a
	// client offset reset); they are not Duplicates, and should be 0.
	ReadTwice int
	// DuplicateAt says where the first duplicates sit (at most maxDuplicateAt): the vehicle,
	// the message's sequence number and the partition@offset of each copy.
	DuplicateAt []string
	OutOfOrder  int
	FirstError  string

	// Open loop (Options.Rate) only: latency from each message's actual send instead of its
	// scheduled time, and the 99th percentile of how late the sends were.
	SentP50, SentP99, SendLagP99 time.Duration
}

// Rate is acknowledged messages per second.
func (r Report) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Acked) / r.Elapsed.Seconds()
}

// OK is true when nothing acknowledged was lost, duplicated or reordered.
func (r Report) OK() bool {
	return r.Errors == 0 && (!r.Verified || (r.Lost == 0 && r.Duplicates == 0 && r.ReadTwice == 0 && r.OutOfOrder == 0))
}

// Print writes the human summary.
func (r Report) Print(w io.Writer, name string) {
	fmt.Fprintf(w, "%s: sent=%d acked=%d errors=%d elapsed=%s rate=%.0f msg/s latency p50=%s p90=%s p99=%s max=%s\n",
		name, r.Sent, r.Acked, r.Errors, r.Elapsed.Round(time.Millisecond), r.Rate(),
		r.P50.Round(time.Microsecond), r.P90.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
	if r.Verified {
		fmt.Fprintf(w, "%s: consumed=%d lost=%d routed_lost=%d duplicates=%d out_of_order=%d\n", name, r.Consumed, r.Lost, r.RoutedLost, r.Duplicates, r.OutOfOrder)
		if r.ReadTwice > 0 {
			fmt.Fprintf(w, "%s: read twice at the same offset: %d\n", name, r.ReadTwice)
		}
		for _, d := range r.DuplicateAt {
			fmt.Fprintf(w, "%s: duplicate: %s\n", name, d)
		}
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "%s: first error: %s\n", name, r.FirstError)
	}
}

// payload is what every simulated message carries, so the run can be told apart in Kafka.
type payload struct {
	Run     string `json:"run"`
	Vehicle string `json:"vin"`
	Seq     int    `json:"seq"`
	Speed   int    `json:"speed"`
	Pad     string `json:"pad,omitempty"`
}

func (o *Options) defaults() error {
	if len(o.PerStream) > 0 {
		o.Client = o.PerStream[0]
	}
	if o.Addr == "" && o.Client == nil {
		return errors.New("load: Addr is required")
	}
	if o.Vehicles <= 0 || o.Messages <= 0 {
		return errors.New("load: Vehicles and Messages must be positive")
	}
	if o.TopicTemplate == "" {
		o.TopicTemplate = "vehicles/%s/telemetry"
	}
	if !strings.Contains(o.TopicTemplate, "%s") {
		return fmt.Errorf("load: topic template %q has no %%s for the vehicle id", o.TopicTemplate)
	}
	if o.Bootstrap != "" && (o.KafkaTopic == "" || (o.Extract == nil && o.RegistryURL == "")) {
		return errors.New("load: verification needs KafkaTopic and RegistryURL")
	}
	if o.VerifyWait <= 0 {
		o.VerifyWait = 60 * time.Second
	}
	return nil
}

// Run sends the load and, if Bootstrap is set, verifies it from Kafka.
func Run(ctx context.Context, o Options) (Report, error) {
	if err := o.defaults(); err != nil {
		return Report{}, err
	}
	sim := o.Client
	if sim == nil {
		var err error
		if sim, err = emqxsim.Dial(emqxsim.Options{Addr: o.Addr, PoolSize: o.Pool, RequestTimeout: o.RequestTimeout}); err != nil {
			return Report{}, err
		}
		defer sim.Close()
	}
	if _, err := sim.Load(ctx); err != nil {
		return Report{}, fmt.Errorf("OnProviderLoaded: %w", err)
	}

	run := fmt.Sprintf("%x", rand.Uint64())
	pad := strings.Repeat("x", max(0, o.PayloadBytes-60))
	latencies := make([][]time.Duration, o.Vehicles)
	fromSend := make([][]time.Duration, o.Vehicles) // open loop: from the actual send
	lags := make([][]time.Duration, o.Vehicles)     // open loop: actual send - scheduled
	stalls := make([]time.Duration, o.Vehicles)
	acked := make([][]int, o.Vehicles) // seqs acknowledged per vehicle
	sent := make([][]int, o.Vehicles)  // seqs sent per vehicle, acknowledged or not
	var errCount atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for v := range o.Vehicles {
		wg.Go(func() {
			vin := vehicleID(v)
			topic := fmt.Sprintf(o.TopicTemplate, vin)
			lat := make([]time.Duration, 0, o.Messages)
			var sentLat, lag []time.Duration
			lastAck := start
			for seq := range o.Messages {
				if ctx.Err() != nil {
					break
				}
				body, _ := json.Marshal(payload{Run: run, Vehicle: vin, Seq: seq, Speed: seq % 180, Pad: pad})
				var t0 time.Time
				switch {
				case o.Rate > 0:
					t0 = start.Add(time.Duration((float64(v) + float64(seq)*float64(o.Vehicles)) / o.Rate * float64(time.Second)))
					time.Sleep(time.Until(t0))
				case seq > 0 && o.Interval > 0:
					time.Sleep(o.Interval)
				}
				sent[v] = append(sent[v], seq)
				via := sim
				if n := len(o.PerStream); n > 0 {
					via = o.PerStream[seq%n]
				}
				sentAt := time.Now()
				if o.Rate <= 0 {
					t0 = sentAt
				}
				_, err := via.Publish(ctx, via.NewMessage(vin, topic, o.QoS, body))
				d, ds := time.Since(t0), time.Since(sentAt)
				if o.Rate > 0 {
					lag = append(lag, sentAt.Sub(t0))
				}
				if err != nil {
					errCount.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat = append(lat, d)
				if o.Rate > 0 {
					sentLat = append(sentLat, ds)
				}
				acked[v] = append(acked[v], seq)
				stalls[v] = max(stalls[v], time.Since(lastAck))
				lastAck = time.Now()
			}
			latencies[v], fromSend[v], lags[v] = lat, sentLat, lag
		})
	}
	wg.Wait()
	if o.Answered != nil {
		o.Answered()
	}
	rep := Report{Elapsed: time.Since(start), Errors: int(errCount.Load()), LongestStall: slices.Max(stalls)}
	if s, ok := firstErr.Load().(string); ok {
		rep.FirstError = s
	}
	all := slices.Concat(latencies...)
	rep.Acked = len(all)
	rep.Sent = rep.Acked + rep.Errors
	if len(all) > 0 {
		q := percentiles(all, .50, .90, .99, 1)
		rep.P50, rep.P90, rep.P99, rep.Max = q[0], q[1], q[2], q[3]
	}
	if sent := slices.Concat(fromSend...); len(sent) > 0 {
		q := percentiles(sent, .50, .99)
		rep.SentP50, rep.SentP99 = q[0], q[1]
	}
	if l := slices.Concat(lags...); len(l) > 0 {
		rep.SendLagP99 = percentiles(l, .99)[0]
	}
	if o.Bootstrap == "" {
		return rep, nil
	}
	return rep, verify(ctx, o, run, acked, sent, &rep)
}

// percentiles sorts ds (not empty) and returns the value at each fraction of ps (1: the
// largest).
func percentiles(ds []time.Duration, ps ...float64) []time.Duration {
	slices.Sort(ds)
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		out[i] = ds[min(len(ds)-1, int(p*float64(len(ds))))]
	}
	return out
}

func vehicleID(i int) string { return fmt.Sprintf("SIMVIN%07d", i) }

// avroEnvelope extracts the payload of the producer's VehicleMessage records.
func avroEnvelope(registryURL string) (func(key, value []byte) ([]byte, error), error) {
	reader, err := schemas.MustLatest(schemas.VehicleMessageName).Parse()
	if err != nil {
		return nil, err
	}
	dec := serde.NewDecoder(serde.NewRegistry(registryURL, "", ""))
	return func(key, value []byte) ([]byte, error) {
		var m schemas.VehicleMessage
		if _, err := dec.Decode(value, reader, &m); err != nil {
			return nil, err
		}
		if m.VehicleID != string(key) {
			return nil, fmt.Errorf("record key %q but vehicle_id %q", key, m.VehicleID)
		}
		return m.Payload, nil
	}, nil
}

// maxDuplicateAt bounds Report.DuplicateAt.
const maxDuplicateAt = 20

// readTimeout bounds one read of the whole topic during verification, or the rest of
// VerifyWait when that is longer.
const readTimeout = 60 * time.Second

// verify reads the Kafka topic and matches it with what was acknowledged.
func verify(ctx context.Context, o Options, run string, acked, sent [][]int, rep *Report) error {
	bySeq := func(per [][]int) map[string]map[int]bool {
		out := map[string]map[int]bool{}
		for v, seqs := range per {
			m := make(map[int]bool, len(seqs))
			for _, s := range seqs {
				m[s] = true
			}
			out[vehicleID(v)] = m
		}
		return out
	}
	want, routed := bySeq(acked), bySeq(sent)
	extract := o.Extract
	if extract == nil {
		var err error
		if extract, err = avroEnvelope(o.RegistryURL); err != nil {
			return err
		}
	}
	// VerifyWait bounds how long to wait for missing records to arrive, never a read: each
	// pass reads the whole topic as it is (stack.ReadAll up to the end offsets), so the last
	// pass, like every other, sees every record written before it started. A broker still
	// restarting is waited for by ReadAll itself (it retries transient errors until its
	// context ends), for readTimeout or what is left of VerifyWait; a failed read fails.
	deadline := time.Now().Add(o.VerifyWait)
	for {
		rctx, cancel := context.WithDeadline(ctx, later(time.Now().Add(readTimeout), deadline))
		recs, err := stack.ReadAll(rctx, o.Bootstrap, 0, o.KafkaTopic)
		cancel()
		if err != nil {
			return fmt.Errorf("verify: read %s: %w", o.KafkaTopic, err)
		}
		found, err := tally(recs, o.Unkeyed, extract, run, rep)
		if err != nil {
			return err
		}
		rep.Consumed, rep.Lost, rep.RoutedLost = 0, 0, 0
		for vin, seqs := range want {
			for s := range seqs {
				if _, ok := found[vin][s]; ok {
					rep.Consumed++
				} else {
					rep.Lost++
				}
			}
		}
		for vin, seqs := range routed {
			for s := range seqs {
				if _, ok := found[vin][s]; !ok {
					rep.RoutedLost++
				}
			}
		}
		rep.Verified = true
		if rep.RoutedLost == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// position is where a record sits in the topic.
type position struct {
	partition int32
	offset    int64
}

func (p position) String() string { return fmt.Sprintf("%d@%d", p.partition, p.offset) }

// tally counts one read of the topic into rep (Consumed, Lost and RoutedLost are left to the
// caller) and returns where the first copy of each of this run's messages sits, by vehicle
// and sequence number.
func tally(recs []stack.Record, unkeyed bool, extract func(key, value []byte) ([]byte, error), run string, rep *Report) (map[string]map[int]position, error) {
	found := map[string]map[int]position{}
	last := map[string]int{}
	rep.Duplicates, rep.ReadTwice, rep.OutOfOrder, rep.DuplicateAt = 0, 0, 0, nil
	for _, r := range recs {
		body, err := extract(r.Key, r.Value)
		if err != nil {
			return nil, fmt.Errorf("verify: record %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
		}
		var p payload
		if json.Unmarshal(body, &p) != nil || p.Run != run {
			continue // not this run's
		}
		if !unkeyed && string(r.Key) != p.Vehicle {
			return nil, fmt.Errorf("verify: record key %q for vehicle %q", r.Key, p.Vehicle)
		}
		if found[p.Vehicle] == nil {
			found[p.Vehicle] = map[int]position{}
		}
		at := position{r.Partition, r.Offset}
		if first, ok := found[p.Vehicle][p.Seq]; ok {
			if first == at {
				rep.ReadTwice++ // the reader's doing, not the writer's
				continue
			}
			rep.Duplicates++
			if len(rep.DuplicateAt) < maxDuplicateAt {
				rep.DuplicateAt = append(rep.DuplicateAt, fmt.Sprintf("%s #%d at %s and %s", p.Vehicle, p.Seq, first, at))
			}
			continue
		}
		found[p.Vehicle][p.Seq] = at
		if prev, ok := last[p.Vehicle]; ok && p.Seq < prev && !unkeyed {
			rep.OutOfOrder++
		}
		last[p.Vehicle] = p.Seq
	}
	return found, nil
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
