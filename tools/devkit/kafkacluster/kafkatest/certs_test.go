package kafkatest

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

// The broker's certificate verifies against the CA for both names clients dial, as a
// server certificate, and its key matches it.
func TestNewCertificates(t *testing.T) {
	caPEM, certPEM, keyPEM, err := NewCertificates()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in caPEM")
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		opts := x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := pair.Leaf.Verify(opts); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "example.com"}); err == nil {
		t.Error("certificate also valid for example.com")
	}
}
