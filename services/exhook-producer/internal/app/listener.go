package app

import (
	"fmt"
	"net"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"

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

// hookServerOptions are the HookProvider server's limits and transport security: the
// receive limit that lets every message EMQX can send reach the handler (an oversize one
// then takes the oversize path), the streams per connection, the handshake deadline, and
// TLS or mutual TLS from reloaded files.
func (a *App) hookServerOptions() ([]grpc.ServerOption, error) {
	g := a.cfg.GRPC
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(a.cfg.MaxReceiveBytes()),
		grpc.MaxConcurrentStreams(uint32(g.MaxConcurrentStreams)),
		grpc.ConnectionTimeout(g.HandshakeTimeout),
	}
	if !g.TLS.Enabled() {
		a.log.Warn("hook listener is plaintext: anyone who reaches it can inject messages (set grpc.tls)", "grpc", a.cfg.GRPC.ListenAddress)
		return opts, nil
	}
	s, err := hooktls.New(hooktls.Files{CertFile: g.TLS.CertFile, KeyFile: g.TLS.KeyFile,
		ClientCAFile: g.TLS.ClientCAFile, Reload: g.TLS.ReloadInterval}, a.log.With("component", "hook-tls"))
	if err != nil {
		return nil, err
	}
	a.hookTLS = s
	return append(opts, grpc.Creds(s.Credentials())), nil
}

// closeHookTLS stops watching the certificate files.
func (a *App) closeHookTLS() {
	if a.hookTLS != nil {
		a.hookTLS.Close()
	}
}
