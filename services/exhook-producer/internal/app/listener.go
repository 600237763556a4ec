package app

import (
	"fmt"
	"math"
	"net"
	"slices"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/tap"

	"github.com/iov-platform/iov/kit/calltime"
	"github.com/iov-platform/iov/services/exhook-producer/internal/callgate"
	"github.com/iov-platform/iov/services/exhook-producer/internal/h2streams"
	"github.com/iov-platform/iov/services/exhook-producer/internal/hooktls"
)

// listenHook binds the HookProvider port, accepting at most grpc.maxConnections at once.
func (a *App) listenHook() error {
	ln, err := net.Listen("tcp", a.cfg.GRPC.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen grpc %s: %w", a.cfg.GRPC.ListenAddress, err)
	}
	a.grpcLn = netutil.LimitListener(ln, a.cfg.GRPC.MaxConnections)
	return nil
}

// hookServerOptions are the HookProvider server's limits and its transport security: the
// receive limit that lets every message EMQX can send reach the handler (an oversize one
// then takes the oversize path), the streams per connection, the handshake deadline; and
// TLS or mutual TLS from reloaded files, or insecure credentials for plaintext
// (connServerOptions wraps them per connection).
func (a *App) hookServerOptions() ([]grpc.ServerOption, credentials.TransportCredentials, error) {
	g := a.cfg.GRPC
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(a.cfg.MaxReceiveBytes()),
		grpc.MaxConcurrentStreams(uint32(g.MaxConcurrentStreams)),
		grpc.ConnectionTimeout(g.HandshakeTimeout),
	}
	if !g.TLS.Enabled() {
		a.log.Warn("hook listener is plaintext: anyone who reaches it can inject messages (set grpc.tls)", "grpc", a.cfg.GRPC.ListenAddress)
		return opts, insecure.NewCredentials(), nil
	}
	s, err := hooktls.New(hooktls.Files{CertFile: g.TLS.CertFile, KeyFile: g.TLS.KeyFile,
		ClientCAFile: g.TLS.ClientCAFile, Reload: g.TLS.ReloadInterval}, a.log.With("component", "hook-tls"))
	if err != nil {
		return nil, nil, err
	}
	a.hookTLS = s
	return opts, s.Credentials(), nil
}

// connServerOptions are one EMQX connection's server options: base (hookServerOptions), its
// credentials wrapped so that the connection's open streams are counted for the drain
// (connserve.go), and EMQX's keepalive.
//
// calls (nil: none) measures each call's time in the server (grpc_server_call_seconds), its
// interceptor outside the ones that follow; gate (nil: none) bounds the calls the connection
// runs at once (grpc.maxRunningCalls): a call over the bound waits unread in the connection.
//
// workers, with a gate, gives the connection one stream worker (grpc.NumStreamWorkers) per
// call the gate runs at once: goroutines that run call after call, instead of one new
// goroutine per call. A new goroutine grows its stack while grpc-go reads the request
// (10-15% of the CPU per async message); a worker keeps its grown stack, but only while the
// runtime's stack shrinking is off (internal/stackshrink): with it on, the GC halves idle
// workers' stacks and the next call grows them again, which cost more than it saved (README,
// "Second round" and "Eighth round"). So workers is stackshrink.Off().
func connServerOptions(base []grpc.ServerOption, creds credentials.TransportCredentials, count *h2streams.Counter, calls *calltime.Recorder, gate *callgate.Gate, workers bool) []grpc.ServerOption {
	counted := h2streams.Credentials(creds, count)
	if gate != nil {
		counted = callgate.Credentials(counted, gate)
	}
	opts := append(slices.Clip(base),
		grpc.Creds(counted),
		// EMQX keeps a pool of long-lived HTTP/2 connections; allow its keepalive pings.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	wrap := func(h tap.ServerInHandle) tap.ServerInHandle { return h }
	if gate != nil {
		wrap = gate.Tap
	}
	switch {
	case calls != nil:
		opts = append(opts, calls.ServerOptionsWrapped(wrap)...)
	case gate != nil:
		opts = append(opts, grpc.InTapHandle(gate.Tap(nil)))
	}
	if gate != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(gate.UnaryInterceptor()), grpc.ChainStreamInterceptor(gate.StreamInterceptor()),
			grpc.ReadBufferSize(0), // the gate's connection buffers its reads (callgate.Credentials)
			// No connection-level flow control: with grpc-go's (64 KiB, grown by its BDP
			// estimate), a client that has used the window still sends calls' headers but
			// holds their data, and the gate lets such calls past its limit (they need the
			// reader to read their data). TCP back-pressure bounds what the client sends;
			// each stream keeps its own window.
			grpc.StaticConnWindowSize(math.MaxInt32))
		if workers {
			opts = append(opts, grpc.NumStreamWorkers(uint32(gate.Limit())))
		}
	}
	return opts
}

// closeHookTLS stops watching the certificate files.
func (a *App) closeHookTLS() {
	if a.hookTLS != nil {
		a.hookTLS.Close()
	}
}
