package kafkatest

import (
	"fmt"

	"github.com/iov-platform/iov/tools/devkit/testpki"
)

// NewCertificates returns a fresh CA certificate and a server certificate it signed for
// 127.0.0.1 / localhost, with the server's PKCS#8 private key, all PEM-encoded.
func NewCertificates() (caPEM, certPEM, keyPEM []byte, err error) {
	ca, err := testpki.NewCA("iov test CA")
	if err != nil {
		return nil, nil, nil, err
	}
	srv, err := ca.IssueValid("127.0.0.1", testpki.Server, "localhost")
	if err != nil {
		return nil, nil, nil, fmt.Errorf("server certificate: %w", err)
	}
	return ca.PEM, srv.CertPEM, srv.KeyPEM, nil
}
