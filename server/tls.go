package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
)

// ErrNoClientCA is returned by TLSConfig when the client CA file holds no
// certificate.
var ErrNoClientCA = errors.New("server: no PEM certificate in the client CA file")

// TLSConfig returns a server TLS configuration (TLS 1.2 or later; 1.3 is
// negotiated whenever the client offers it) with the certificate chain and
// key of the PEM files certFile and keyFile. If clientCAFile is not empty,
// every client must present a certificate signed by one of the PEM
// certificates in it, or the handshake fails and the connection is closed.
func TLSConfig(certFile, keyFile, clientCAFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("server: TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, fmt.Errorf("server: TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: %s", ErrNoClientCA, clientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// newTLSListener wraps ln so that every accepted connection speaks TLS with
// cfg. The handshake runs in the connection's own goroutine (handshake), not
// in Accept, so a silent client cannot hold up others.
func newTLSListener(ln net.Listener, cfg *tls.Config) net.Listener {
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg = cfg.Clone()
		cfg.MinVersion = tls.VersionTLS12
	}
	return tls.NewListener(ln, cfg)
}

// handshake completes the TLS handshake of a TLS connection within the
// request timeout (a client that connects and sends nothing is closed like
// one that stalls inside a request). It returns "" when the connection may
// be served, else the reason it ends.
func (c *conn) handshake() (string, error) {
	tc, ok := c.nc.(*tls.Conn)
	if !ok {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(c.s.soft, c.s.cfg.RequestTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		if c.stopping.Load() || c.s.soft.Err() != nil {
			return "server shutdown", nil
		}
		c.log.Warn("closing connection: TLS handshake failed", "err", err)
		c.observeError(ErrProtocol)
		return "TLS handshake failed", err
	}
	st := tc.ConnectionState()
	attrs := []any{"version", tls.VersionName(st.Version)}
	if len(st.PeerCertificates) > 0 {
		attrs = append(attrs, "client", st.PeerCertificates[0].Subject.String())
	}
	c.log.Info("TLS established", attrs...)
	return "", nil
}
