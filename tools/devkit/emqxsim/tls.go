package emqxsim

import (
	"crypto/tls"

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
