// Package connwrap wraps the connection a gRPC server's transport credentials return from
// their handshake, so that the server reads and writes through the wrapper: after TLS, on
// the HTTP/2 bytes. The exhook producer's per-connection servers count their streams
// (h2streams) and bound their running calls (callgate) this way.
package connwrap

import (
	"net"

	"google.golang.org/grpc/credentials"
)

// Credentials returns creds (TLS, or insecure for plaintext) with wrap applied to every
// connection their server handshake returns.
func Credentials(creds credentials.TransportCredentials, wrap func(net.Conn) net.Conn) credentials.TransportCredentials {
	return &wrapped{TransportCredentials: creds, wrap: wrap}
}

type wrapped struct {
	credentials.TransportCredentials
	wrap func(net.Conn) net.Conn
}

func (w *wrapped) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	nc, info, err := w.TransportCredentials.ServerHandshake(raw)
	if err != nil {
		return nc, info, err
	}
	return w.wrap(nc), info, nil
}

func (w *wrapped) Clone() credentials.TransportCredentials {
	return &wrapped{TransportCredentials: w.TransportCredentials.Clone(), wrap: w.wrap}
}
