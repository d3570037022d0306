package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// newSerial returns a random certificate serial number.
func newSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate and key (PEM) signed by ca: a server
// certificate for 127.0.0.1, or a client certificate.
func (ca *testCA) issue(t testing.TB, name string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsSetup is a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, and a client certificate signed by
// another CA.
type tlsSetup struct {
	ca                    *testCA
	certFile, keyFile     string
	caFile                string
	client, foreignClient tls.Certificate
}

func newTLSSetup(t testing.TB) *tlsSetup {
	t.Helper()
	dir := t.TempDir()
	ca, other := newTestCA(t, "durusbdb test CA"), newTestCA(t, "another CA")
	s := &tlsSetup{ca: ca}
	cert, key := ca.issue(t, "127.0.0.1", true)
	s.certFile, s.keyFile = writeFile(t, dir, "server.pem", cert), writeFile(t, dir, "server.key", key)
	s.caFile = writeFile(t, dir, "ca.pem", ca.pem)
	var err error
	if s.client, err = tls.X509KeyPair(ca.issue(t, "good client", false)); err != nil {
		t.Fatal(err)
	}
	if s.foreignClient, err = tls.X509KeyPair(other.issue(t, "foreign client", false)); err != nil {
		t.Fatal(err)
	}
	return s
}

// dialTLS connects with TLS (trusting the test CA), presenting certs.
func (s *tlsSetup) dialTLS(t testing.TB, addr string, maxVersion uint16, certs ...tls.Certificate) (*client, error) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(s.ca.cert)
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		Config:    &tls.Config{RootCAs: roots, Certificates: certs, MaxVersion: maxVersion},
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc}, nil
}

// refused asserts that a TLS client is turned away: the dial fails, or
// (TLS 1.3 sends the server's verdict after the client's handshake is
// done) the first request gets no reply but an error.
func refused(t *testing.T, c *client, err error) {
	t.Helper()
	if err != nil {
		return
	}
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write([]byte{'N'}); err != nil {
		return
	}
	var b [8]byte
	n, err := c.nc.Read(b[:])
	if err == nil || n != 0 {
		t.Fatalf("refused client got %d bytes, err %v", n, err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("refused client's connection was not closed within 10 s")
	}
}

// TLS with client certificates: a client with a certificate of the client
// CA is served (over TLS 1.3); one without a certificate, one with a
// certificate of another CA, a plain-text client and a TLS 1.1 client are
// refused; the server keeps serving the good one throughout.
func TestTLSClientCertificates(t *testing.T) {
	s := newTLSSetup(t)
	cfg, err := TLSConfig(s.certFile, s.keyFile, s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{TLS: cfg}, newMemStore())

	good, err := s.dialTLS(t, ts.addr, 0, s.client)
	if err != nil {
		t.Fatal(err)
	}
	oid := good.newOIDs(1)[0]
	if _, st := good.commit(rec(oid, "over tls")); st != 'O' {
		t.Fatalf("commit over TLS: %q", st)
	}
	if v := good.nc.(*tls.Conn).ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("negotiated %s, want TLS 1.3", tls.VersionName(v))
	}

	c, err := s.dialTLS(t, ts.addr, 0)
	refused(t, c, err)
	c, err = s.dialTLS(t, ts.addr, 0, s.foreignClient)
	refused(t, c, err)
	c, err = s.dialTLS(t, ts.addr, tls.VersionTLS11, s.client)
	refused(t, c, err)
	// A stock client's first request, V, is not a TLS record.
	plain := ts.dialRaw(t)
	plain.send([]byte{'V'}, u32(1))
	plain.expectClosed(5 * time.Second)

	st, got := good.load(oid)
	if st != 'O' || string(got) != string(rec(oid, "over tls")) {
		t.Fatalf("load after refusals: %q %q", st, got)
	}
	again, err := s.dialTLS(t, ts.addr, 0, s.client)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := again.load(oid); st != 'O' {
		t.Fatalf("second good client: load status %q", st)
	}
	waitFor(t, 5*time.Second, "refusals in the log", func() bool { return containsLog(ts, "TLS handshake failed") })
	if !containsLog(ts, `client="CN=good client"`) {
		t.Errorf("the client certificate is not logged:\n%s", ts.logs.String())
	}
}

// TLS without --tls-client-ca: any TLS client is served, with or without
// a certificate.
func TestTLSWithoutClientCA(t *testing.T) {
	s := newTLSSetup(t)
	cfg, err := TLSConfig(s.certFile, s.keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{TLS: cfg}, newMemStore())
	c, err := s.dialTLS(t, ts.addr, tls.VersionTLS12)
	if err != nil {
		t.Fatal(err)
	}
	c.newOIDs(3)
	if v := c.nc.(*tls.Conn).ConnectionState().Version; v != tls.VersionTLS12 {
		t.Errorf("negotiated %s, want TLS 1.2", tls.VersionName(v))
	}
}

// A client that connects to a TLS listener and sends nothing is closed
// after the request timeout, not kept forever.
func TestTLSHandshakeTimeout(t *testing.T) {
	s := newTLSSetup(t)
	cfg, err := TLSConfig(s.certFile, s.keyFile, s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{TLS: cfg, RequestTimeout: 300 * time.Millisecond}, newMemStore())
	silent := ts.dialRaw(t)
	silent.expectClosed(10 * time.Second)
}

// TLSConfig reports unusable files.
func TestTLSConfigErrors(t *testing.T) {
	s := newTLSSetup(t)
	if _, err := TLSConfig(s.certFile, s.certFile, ""); err == nil {
		t.Error("a certificate as its own key accepted")
	}
	if _, err := TLSConfig(filepath.Join(t.TempDir(), "none.pem"), s.keyFile, ""); err == nil {
		t.Error("a missing certificate accepted")
	}
	if _, err := TLSConfig(s.certFile, s.keyFile, s.keyFile); !errors.Is(err, ErrNoClientCA) {
		t.Errorf("a client CA file without certificates: %v", err)
	}
	cfg, err := TLSConfig(s.certFile, s.keyFile, s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("MinVersion %x, ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
}

// BenchmarkLoadRoundTrip: one connection's L round trips, plain and over
// TLS (the handshake is outside the timed loop).
func BenchmarkLoadRoundTrip(b *testing.B) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "tls"}[useTLS]
		b.Run(name, func(b *testing.B) {
			cfg := Config{Logger: quietLogger()}
			var s *tlsSetup
			if useTLS {
				s = newTLSSetup(b)
				var err error
				if cfg.TLS, err = TLSConfig(s.certFile, s.keyFile, s.caFile); err != nil {
					b.Fatal(err)
				}
			}
			ts := startServer(b, cfg, newMemStore())
			var c *client
			if useTLS {
				var err error
				if c, err = s.dialTLS(b, ts.addr, 0, s.client); err != nil {
					b.Fatal(err)
				}
			} else {
				c = ts.dialRaw(b)
			}
			oid := c.newOIDs(1)[0]
			if _, st := c.commit(rec(oid, "root-record-of-some-size-------------------------------------")); st != 'O' {
				b.Fatal(st)
			}
			b.ResetTimer()
			for range b.N {
				if st, _ := c.load(oid); st != 'O' {
					b.Fatal(st)
				}
			}
		})
	}
}
