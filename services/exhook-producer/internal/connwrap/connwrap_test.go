package connwrap

import (
	"net"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

type marked struct{ net.Conn }

// The connection a server handshake returns is wrapped, by the credentials and their clone.
func TestServerHandshakeWraps(t *testing.T) {
	creds := Credentials(insecure.NewCredentials(), func(nc net.Conn) net.Conn { return marked{nc} })
	for name, c := range map[string]credentials.TransportCredentials{"credentials": creds, "clone": creds.Clone()} {
		server, client := net.Pipe()
		nc, _, err := c.ServerHandshake(server)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m, ok := nc.(marked); !ok || m.Conn != server {
			t.Errorf("%s: handshake returned %T, want the raw connection wrapped", name, nc)
		}
		_ = client.Close()
		_ = server.Close()
	}
}
