package emqxsim

import (
	"crypto/tls"
	"net"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// transportCredentials is how the pool dials: TLS with conf when set (EMQX's
// exhook.servers[].ssl: RootCAs is cacertfile, Certificates certfile/keyfile, ServerName
// server_name_indication), plaintext otherwise.
func transportCredentials(conf *tls.Config) grpc.DialOption {
	if conf == nil {
		return grpc.WithTransportCredentials(insecure.NewCredentials())
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(conf))
}

// dialTLS is conf for a handshake made outside gRPC (ModeGun1): the server name from
// target when conf names none, and ALPN h2, which gRPC's TLS credentials would add. nil
// stays nil.
func dialTLS(conf *tls.Config, target string) *tls.Config {
	if conf == nil {
		return nil
	}
	c := conf.Clone()
	if c.ServerName == "" {
		if host, _, err := net.SplitHostPort(target); err == nil {
			c.ServerName = host
		}
	}
	if !slices.Contains(c.NextProtos, "h2") {
		c.NextProtos = append(c.NextProtos, "h2")
	}
	return c
}
