package loadgen

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
)

// clientTLS is the load generator's TLS: 1.3 only, no session resumption
// (every connection makes a full handshake), and no check of the server's
// certificate: it measures servers, it does not protect data. X25519 is
// the only key exchange offered, so that every server does the same work:
// Go's servers would otherwise pick the hybrid X25519MLKEM768 (Go's
// default since 1.24), which OpenSSL 3.0's (uvloop's, asyncio's) lacks.
var clientTLS = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13,
	CurvePreferences: []tls.CurveID{tls.X25519}}

// dial connects to cfg.Addr (TCP, or a Unix domain socket); with cfg.TLS it also makes the handshake,
// bounded by ConnectTimeout.
func dial(ctx context.Context, d *net.Dialer, cfg Config) (net.Conn, error) {
	network, address := cfg.target()
	c, err := d.DialContext(ctx, network, address)
	if err != nil || !cfg.TLS {
		return c, err
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	tc := tls.Client(c, clientTLS)
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}
