// Package hooktls serves the HookProvider listener over TLS, or mutual TLS when a client CA
// is given, from PEM files that are re-read while the process runs: a rotated certificate,
// key or client CA (cert-manager renewing a Secret, the kubelet swapping the mounted files)
// is served to new connections without a restart.
//
// The files are watched by grpc-go's own pemfile certificate provider
// (google.golang.org/grpc/credentials/tls/certprovider/pemfile), which re-reads them every
// refresh interval and keeps the last good material when a read or parse fails, e.g. while
// a certificate and its key are being replaced one after the other.
package hooktls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/tls/certprovider"
	"google.golang.org/grpc/credentials/tls/certprovider/pemfile"
)

// Files names the PEM files.
type Files struct {
	CertFile     string        // server certificate chain
	KeyFile      string        // its private key
	ClientCAFile string        // CA bundle client certificates must chain to; empty: no client certificates
	Reload       time.Duration // how often the files are re-read
}

// Server is the listener's TLS credentials; Close stops watching the files.
type Server struct {
	provider certprovider.Provider
	mtls     bool
	log      *slog.Logger

	mu     sync.Mutex
	served *x509.Certificate // the leaf last handed to a handshake, to log rotations
}

// New loads the files once, so that a bad file fails the start with its name, then watches
// them.
func New(f Files, log *slog.Logger) (*Server, error) {
	if _, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile); err != nil {
		return nil, fmt.Errorf("grpc.tls certificate %s / key %s: %w", f.CertFile, f.KeyFile, err)
	}
	if f.ClientCAFile != "" {
		pem, err := os.ReadFile(f.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("grpc.tls client CA: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("grpc.tls client CA %s: no PEM certificate", f.ClientCAFile)
		}
	}
	if f.Reload <= 0 {
		return nil, errors.New("grpc.tls.reloadInterval must be positive")
	}
	p, err := pemfile.NewProvider(pemfile.Options{CertFile: f.CertFile, KeyFile: f.KeyFile, RootFile: f.ClientCAFile, RefreshDuration: f.Reload})
	if err != nil {
		return nil, fmt.Errorf("grpc.tls: %w", err)
	}
	return &Server{provider: p, mtls: f.ClientCAFile != "", log: log}, nil
}

// Credentials are the gRPC server's transport credentials: each handshake takes the
// current certificate and client CA.
func (s *Server) Credentials() credentials.TransportCredentials {
	return credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, GetConfigForClient: s.configForClient})
}

func (s *Server) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	km, err := s.provider.KeyMaterial(hello.Context())
	if err != nil {
		return nil, fmt.Errorf("tls key material: %w", err)
	}
	if len(km.Certs) == 0 {
		return nil, errors.New("tls key material: no certificate")
	}
	s.noteServed(&km.Certs[0])
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: km.Certs,
		NextProtos:   []string{"h2"}, // gRPC is HTTP/2; grpc-go checks the negotiated protocol
	}
	if s.mtls {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = km.Roots
	}
	return cfg, nil
}

// noteServed logs the certificate the first time a handshake serves it.
func (s *Server) noteServed(c *tls.Certificate) {
	leaf := c.Leaf
	if leaf == nil {
		return
	}
	s.mu.Lock()
	changed := s.served == nil || !s.served.Equal(leaf)
	if changed {
		s.served = leaf
	}
	s.mu.Unlock()
	if changed {
		s.log.Info("hook tls certificate served", "subject", leaf.Subject.String(), "dns_names", leaf.DNSNames,
			"not_after", leaf.NotAfter.UTC(), "client_auth", s.mtls)
	}
}

// Close stops watching the files.
func (s *Server) Close() { s.provider.Close() }
