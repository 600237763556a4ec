// Command floor is the do-nothing ExHook server: the floor of what an ExHook provider costs
// per EMQX call. It serves emqx.exhook.v2 and emqx.exhook.v3 on one port, registers
// message.publish for every topic on OnProviderLoaded and answers IGNORE to each
// message.publish, without looking at it. Every other hook is left unimplemented. make
// bench measures our producer against it.
//
// With --metrics-listen it also measures each call's time in the server (kit/calltime, the
// same measurement as our producer's) and serves it at /metrics; make bench reads it there.
// --mem-peak-dir writes its memory at the resident peak, as EXHOOK_MEMPEAK does ours.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/iov-platform/iov/kit/calltime"
	"github.com/iov-platform/iov/kit/cli"
	"github.com/iov-platform/iov/kit/mempeak"
	exhookv2 "github.com/iov-platform/iov/proto/emqx/exhook/v2"
	exhookv3 "github.com/iov-platform/iov/proto/emqx/exhook/v3"
)

func main() {
	cli.Main("floor", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout) })
}

// run serves until ctx ends; the LISTEN (and METRICS) address lines go to out.
func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	addr := fs.String("listen", "127.0.0.1:0", "gRPC listen address (loopback; port 0 picks a free port)")
	metricsAddr := fs.String("metrics-listen", "", "serve the calls' time in the server at /metrics on this address (\"\": not measured)")
	memPeak := fs.String("mem-peak-dir", "", "write the memory at its resident peak here (kit/mempeak: peak.txt, heap.pprof)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *memPeak != "" {
		stopPeak, err := mempeak.Watch(ctx, *memPeak, 10*time.Millisecond)
		if err != nil {
			lis.Close()
			return err
		}
		defer stopPeak() // the last peak's files whole before exit
	}
	var opts []grpc.ServerOption
	if *metricsAddr != "" {
		mlis, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			lis.Close()
			return fmt.Errorf("listen metrics: %w", err)
		}
		reg := prometheus.NewRegistry()
		opts = calltime.New(reg).ServerOptions()
		msrv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = msrv.Serve(mlis) }()
		defer msrv.Close()
		fmt.Fprintf(out, "METRICS %s\n", mlis.Addr())
	}
	// The address line is how a parent (bench) learns the port.
	fmt.Fprintf(out, "LISTEN %s\n", lis.Addr())
	return serve(ctx, lis, log, opts...)
}

// serve answers ExHook calls on lis until ctx ends, then drains them for at most 5 s.
func serve(ctx context.Context, lis net.Listener, log *slog.Logger, opts ...grpc.ServerOption) error {
	srv := grpc.NewServer(opts...)
	exhookv2.RegisterHookProviderServer(srv, v2{})
	exhookv3.RegisterHookProviderServer(srv, v3{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("stopping: draining calls for at most 5s")
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		srv.Stop()
	}
	return nil
}

type v2 struct {
	exhookv2.UnimplementedHookProviderServer
}

var (
	loadedV2 = &exhookv2.LoadedResponse{Hooks: []*exhookv2.HookSpec{{Name: "message.publish"}}}
	ignoreV2 = &exhookv2.ValuedResponse{Type: exhookv2.ValuedResponse_IGNORE}
	loadedV3 = &exhookv3.LoadedResponse{Hooks: []*exhookv3.HookSpec{{Name: "message.publish"}}}
	ignoreV3 = &exhookv3.ValuedResponse{Type: exhookv3.ValuedResponse_IGNORE}
)

func (v2) OnProviderLoaded(context.Context, *exhookv2.ProviderLoadedRequest) (*exhookv2.LoadedResponse, error) {
	return loadedV2, nil
}

func (v2) OnMessagePublish(context.Context, *exhookv2.MessagePublishRequest) (*exhookv2.ValuedResponse, error) {
	return ignoreV2, nil
}

type v3 struct {
	exhookv3.UnimplementedHookProviderServer
}

func (v3) OnProviderLoaded(context.Context, *exhookv3.ProviderLoadedRequest) (*exhookv3.LoadedResponse, error) {
	return loadedV3, nil
}

func (v3) OnMessagePublish(context.Context, *exhookv3.MessagePublishRequest) (*exhookv3.ValuedResponse, error) {
	return ignoreV3, nil
}
