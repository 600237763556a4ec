package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/iov-platform/iov/tools/devkit/readiness"
	"github.com/iov-platform/iov/tools/devkit/stack"
)

// TestMain makes the test binary a stand-in peer when BENCH_FAKE_PEER is set: it writes its
// arguments and working directory to args.txt there, logs a line, and then, for "serve",
// listens on its first argument until SIGTERM; for "fail", exits 3 at once.
func TestMain(m *testing.M) {
	mode := os.Getenv("BENCH_FAKE_PEER")
	if mode == "" {
		os.Exit(m.Run())
	}
	wd, _ := os.Getwd()
	_ = os.WriteFile("args.txt", []byte(strings.Join(append(os.Args[1:], wd), "\n")), 0o600)
	fmt.Fprintln(os.Stderr, "fake peer: config read")
	if mode == "fail" {
		fmt.Fprintln(os.Stderr, "fake peer: kafka client error")
		os.Exit(3)
	}
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		os.Exit(4)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	os.Exit(0)
}

func TestPeerArgs(t *testing.T) {
	got := peerArgs("run.sh  /bin/x {port} {bootstrap} {topic} --listen={listen} --dir {dir}/c.yaml", "127.0.0.1:4567", "127.0.0.1:9092", "bench.p", "/tmp/d")
	want := []string{"run.sh", "/bin/x", "4567", "127.0.0.1:9092", "bench.p", "--listen=127.0.0.1:4567", "--dir", "/tmp/d/c.yaml"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("peerArgs = %q, want %q", got, want)
	}
}

func TestStartPeer(t *testing.T) {
	st, err := stack.Start(stack.Options{Bootstrap: "kafka.invalid:9092"}) // the registry only
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := config{} // not pinned
	bin, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Run("serving", func(t *testing.T) {
		t.Setenv("BENCH_FAKE_PEER", "serve")
		s, err := startPeer(context.Background(), c, st, peer{name: "fake", command: bin + " {listen} {bootstrap} {topic} {port}"})
		if err != nil {
			t.Fatal(err)
		}
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatalf("not listening once started: %v", err)
		}
		conn.Close()
		b, err := os.ReadFile(filepath.Join(s.dir, "args.txt"))
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(s.addr)
		want := []string{s.addr, "kafka.invalid:9092", "bench.fake", port, s.dir}
		if got := strings.Split(string(b), "\n"); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("the peer got %q, want %q (its working directory last)", got, want)
		}
		if log, _ := os.ReadFile(filepath.Join(s.dir, "peer.log")); !strings.Contains(string(log), "config read") {
			t.Fatalf("peer.log %q", log)
		}
		if s.pid() <= 0 || s.metrics != "" {
			t.Fatalf("pid %d, metrics %q", s.pid(), s.metrics)
		}
		if exit := s.stop(5 * time.Second); exit != "exit 0" {
			t.Fatalf("stop: %s", exit)
		}
		if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
			t.Fatalf("its directory is left: %v", err)
		}
	})
	t.Run("failing", func(t *testing.T) {
		t.Setenv("BENCH_FAKE_PEER", "fail")
		_, err := startPeer(context.Background(), c, st, peer{name: "fake", command: bin + " {listen}"})
		if !errors.Is(err, readiness.ErrExited) || !strings.Contains(err.Error(), "kafka client error") {
			t.Fatalf("startPeer = %v, want ErrExited with the end of its output", err)
		}
	})
}
