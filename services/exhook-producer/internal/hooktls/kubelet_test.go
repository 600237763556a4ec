package hooktls_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/iov-platform/iov/services/exhook-producer/internal/hooktls"
	"github.com/iov-platform/iov/tools/devkit/testpki"
)

// secretVolume lays files out as the kubelet lays out a Secret volume mounted as a directory
// (pkg/volume/util/atomic_writer.go): the data sits in a timestamped "..<time>.<rand>"
// directory, "..data" links to it, and each visible name (tls.crt, ...) links to
// "..data/<name>". An update writes a new timestamped directory, points a "..data_tmp" link at
// it and renames that link over "..data" (one atomic step for all files), then removes the old
// directory. This is what reaches a pod that mounts the Secret without subPath.
type secretVolume struct {
	t   *testing.T
	dir string
}

func (v secretVolume) write(files map[string][]byte) {
	v.t.Helper()
	old, _ := os.Readlink(filepath.Join(v.dir, "..data"))
	ts, err := os.MkdirTemp(v.dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		v.t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(ts, name), b, 0o440); err != nil {
			v.t.Fatal(err)
		}
	}
	tmp := filepath.Join(v.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		v.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.dir, "..data")); err != nil {
		v.t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(v.dir, name)
		if _, err := os.Readlink(link); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				v.t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(v.dir, old)); err != nil {
			v.t.Fatal(err)
		}
	}
}

// pki is one CA with a server certificate and a client certificate, as cert-manager issues
// them into the producer's Secret (tls.crt, tls.key, ca.crt) and EMQX's.
type pki struct {
	ca             *testpki.CA
	server, client *testpki.Leaf
}

func newPKI(t *testing.T, name string) pki {
	t.Helper()
	ca, err := testpki.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.IssueValid("iov-exhook-producer.iov.svc", testpki.Server)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.IssueValid("iov-emqx", testpki.Client)
	if err != nil {
		t.Fatal(err)
	}
	return pki{ca: ca, server: server, client: client}
}

func (p pki) secret() map[string][]byte {
	return map[string][]byte{"tls.crt": p.server.CertPEM, "tls.key": p.server.KeyPEM, "ca.crt": p.ca.PEM}
}

// handshake dials the server credentials as EMQX does (trusting roots, presenting client) and
// returns the certificate the server presented.
func handshake(t *testing.T, s *hooktls.Server, roots, client pki) (served []byte, err error) {
	t.Helper()
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		conn, _, err := s.Credentials().ServerHandshake(sc)
		if err == nil {
			conn.Close()
		}
		done <- err
	}()
	c := tls.Client(cc, &tls.Config{RootCAs: roots.ca.Pool(), ServerName: "iov-exhook-producer.iov.svc",
		Certificates: []tls.Certificate{client.client.TLS}, NextProtos: []string{"h2"}, MinVersion: tls.VersionTLS12})
	err = c.HandshakeContext(ctx)
	if err == nil {
		served = c.ConnectionState().PeerCertificates[0].Raw
		// TLS 1.3 reports a refused client certificate on the first read, not in the handshake.
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, rerr := c.Read(make([]byte, 1)); rerr != nil && rerr != io.EOF && !isTimeout(rerr) {
			err = rerr
		}
	}
	cc.Close()
	if serr := <-done; err == nil {
		err = serr
	}
	return served, err
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestRotationThroughKubeletSecretVolume: the producer reads tls.crt, tls.key and ca.crt from
// a Secret volume the kubelet updates by swapping "..data"; after cert-manager renews the
// Secret with a new CA, new handshakes get the new certificate and accept only clients of the
// new CA, with no restart.
func TestRotationThroughKubeletSecretVolume(t *testing.T) {
	vol := secretVolume{t: t, dir: t.TempDir()}
	first, second := newPKI(t, "hook CA 1"), newPKI(t, "hook CA 2")
	vol.write(first.secret())
	s, err := hooktls.New(hooktls.Files{CertFile: filepath.Join(vol.dir, "tls.crt"), KeyFile: filepath.Join(vol.dir, "tls.key"),
		ClientCAFile: filepath.Join(vol.dir, "ca.crt"), Reload: 10 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	served, err := handshake(t, s, first, first)
	if err != nil {
		t.Fatalf("before the renewal: %v", err)
	}
	if string(served) != string(first.server.TLS.Certificate[0]) {
		t.Fatal("before the renewal the server did not present the first certificate")
	}

	vol.write(second.secret())
	deadline := time.Now().Add(10 * time.Second)
	for {
		served, err = handshake(t, s, second, second)
		if err == nil && string(served) == string(second.server.TLS.Certificate[0]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate was not served within 10s (last error: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := handshake(t, s, second, first); err == nil {
		t.Fatal("after the renewal a client certificate of the old CA was accepted")
	}
}
