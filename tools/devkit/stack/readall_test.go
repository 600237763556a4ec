package stack_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/iov-platform/iov/tools/devkit/stack"
	"github.com/iov-platform/iov/tools/devkit/stack/stacktest"
)

// TestReadAllReadsToTheEndOffsets: with want <= 0, ReadAll returns every record the topics
// hold when it is called, nothing for an empty or missing topic, and an error, not a partial
// result, when its context ends first. (It once took a per-poll bound as well; with a bound
// shorter than the poll's own start-up, as under -race, franz-go returned every poll at once
// without the buffered records and ReadAll polled until ctx ended.)
func TestReadAllReadsToTheEndOffsets(t *testing.T) {
	st := stacktest.Start(t, stack.Options{Partitions: 3, Topics: []string{"full", "empty"}})
	cl := stacktest.Client(t, st)
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
		want   int
	}{
		{"every record", []string{"full"}, n},
		{"two topics, one empty", []string{"full", "empty"}, n},
		{"empty topic", []string{"empty"}, 0},
		{"missing topic", []string{"no-such-topic"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := stack.ReadAll(ctx, st.KafkaBootstrap(), 0, tc.topics...)
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
		if got, err := stack.ReadAll(ctx, st.KafkaBootstrap(), 0, "full"); !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadAll with an ended context: %d records, err %v", len(got), err)
		}
	})
}

// TestReadAllWaitsForARestartingBroker: a broker that refuses connections because it is
// restarting (its port closed, as a real node's is between stop and start) delays ReadAll
// until it listens again; it does not fail it. Two shapes reach ReadAll differently from
// franz-go: with every broker down the metadata request fails with the bare dial error; with
// only a partition leader down, kadm's ListOffsets returns it inside *kadm.ShardErrors.
func TestReadAllWaitsForARestartingBroker(t *testing.T) {
	const n = 60
	produce := func(t *testing.T, bootstrap ...string) {
		t.Helper()
		cl, err := kgo.NewClient(kgo.SeedBrokers(bootstrap...))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: "t", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "%d", i)})
		}
		if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// readDuring starts ReadAll while the broker is down, brings it back after a while and
	// checks that ReadAll was still waiting and then read every record.
	readDuring := func(t *testing.T, bootstrap string, restart func() error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		type result struct {
			recs []stack.Record
			err  error
		}
		done := make(chan result, 1)
		go func() {
			recs, err := stack.ReadAll(ctx, bootstrap, 0, "t")
			done <- result{recs, err}
		}()
		select {
		case r := <-done:
			t.Fatalf("ReadAll returned while a broker refused connections: %d records, err %v", len(r.recs), r.err)
		case <-time.After(time.Second):
		}
		if err := restart(); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || len(r.recs) != n {
			t.Fatalf("ReadAll after the restart: %d records, err %v; want %d", len(r.recs), r.err, n)
		}
	}

	t.Run("every broker down", func(t *testing.T) {
		st := stacktest.Start(t, stack.Options{Partitions: 3, Topics: []string{"t"}, DataDir: t.TempDir()})
		produce(t, st.KafkaBootstrap())
		st.StopKafka()
		readDuring(t, st.KafkaBootstrap(), st.StartKafka)
	})

	t.Run("a partition leader down", func(t *testing.T) {
		var gates []*gateListener
		c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, "t"),
			kfake.ListenFn(func(network, addr string) (net.Listener, error) {
				g, err := listenGate(network, addr)
				if err == nil {
					gates = append(gates, g) // NewCluster calls this for node 0, 1, 2 in turn
				}
				return g, err
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		produce(t, c.ListenAddrs()...)
		leader := c.LeaderFor("t", 0)
		gates[leader].down()
		readDuring(t, strings.Join(c.ListenAddrs(), ","), gates[leader].up)
	})
}

// gateListener is a broker's listener that can be closed, so that its port refuses
// connections and the connections it accepted drop, and opened again on the same address;
// the broker keeps accepting from it throughout.
type gateListener struct {
	network string
	addr    net.Addr
	mu      sync.Mutex
	cond    *sync.Cond
	ln      net.Listener // nil while down
	conns   []net.Conn
	closed  bool
}

func listenGate(network, addr string) (*gateListener, error) {
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	g := &gateListener{network: network, addr: ln.Addr(), ln: ln}
	g.cond = sync.NewCond(&g.mu)
	return g, nil
}

func (g *gateListener) Accept() (net.Conn, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		for g.ln == nil && !g.closed {
			g.cond.Wait()
		}
		if g.closed {
			return nil, net.ErrClosed
		}
		ln := g.ln
		g.mu.Unlock()
		conn, err := ln.Accept()
		g.mu.Lock()
		switch {
		case g.ln != ln: // closed by down meanwhile
			if conn != nil {
				conn.Close()
			}
		case err != nil:
			return nil, err
		default:
			g.conns = append(g.conns, conn)
			return conn, nil
		}
	}
}

func (g *gateListener) down() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ln.Close()
	g.ln = nil
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

func (g *gateListener) up() error {
	ln, err := net.Listen(g.network, g.addr.String())
	if err != nil {
		return fmt.Errorf("listen again: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ln = ln
	g.cond.Broadcast()
	return nil
}

func (g *gateListener) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	g.cond.Broadcast()
	if g.ln != nil {
		return g.ln.Close()
	}
	return nil
}

func (g *gateListener) Addr() net.Addr { return g.addr }
