package loadgen

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"
)

// startTLSServer is startServer behind TLS, with a self-signed certificate
// made for the test.
func startTLSServer(t *testing.T, handle func(c net.Conn)) *server {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "loadgen.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	return serveListener(t, tls.NewListener(ln, cfg), 0, handle)
}

// TestTLSModes: echo, churn (a full handshake each cycle) and bulk over
// TLS get their figures, with no error; a plaintext server is an error.
func TestTLSModes(t *testing.T) {
	s := startTLSServer(t, echo(nil))
	for _, cfg := range []Config{
		{Mode: ModeEcho, Conns: 4, Size: 64, Duration: 300 * time.Millisecond},
		{Mode: ModeChurn, Conns: 2, Size: 64, Duration: 300 * time.Millisecond},
		{Mode: ModeBulk, Conns: 1, Size: 16 << 10, Bytes: 4 << 20, Duration: 10 * time.Second},
	} {
		t.Run(cfg.Mode, func(t *testing.T) {
			cfg.Addr, cfg.TLS = s.addr(), true
			res := runFor(t, cfg, cfg.Duration+2*time.Second)
			if res.Messages == 0 || res.Errors != 0 || res.Mismatches != 0 || res.FirstError != "" {
				t.Fatalf("got %+v", res)
			}
		})
	}
	plain := startServer(t, echo(nil))
	cfg := Config{Addr: plain.addr(), TLS: true, Conns: 1, Size: 64, Duration: 200 * time.Millisecond,
		ConnectTimeout: time.Second}
	if _, err := Run(t.Context(), cfg); err == nil {
		t.Error("a TLS run against a plaintext server succeeded")
	}
	wantConfigError(t, "Client", Config{Addr: plain.addr(), TLS: true, Client: ClientEngine, Conns: 1, Size: 64, Duration: time.Second})
}
