package main

/*
#include <stdlib.h>
#include "glue.h"
*/
import "C"

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// tlsSpec is a pyiocp.TLSConfig as Python sends it (JSON): the files are
// read here, so that a bad one fails at the TLSConfig's construction.
type tlsSpec struct {
	Certfile         *string     `json:"certfile"`
	Keyfile          *string     `json:"keyfile"`
	Certs            [][2]string `json:"certs"`
	Cafile           *string     `json:"cafile"`
	ClientAuth       string      `json:"client_auth"`
	ALPN             []string    `json:"alpn"`
	MinVersion       string      `json:"min_version"`
	ServerName       *string     `json:"server_name"`
	Verify           bool        `json:"verify"`
	HandshakeTimeout int64       `json:"handshake_timeout_ns"`
}

// tlsEntry is a built configuration, named by a handle Python holds: a
// listener's side (nil without a certificate) and a connect's.
type tlsEntry struct {
	server  *tls.Config
	client  *tls.Config
	timeout time.Duration
}

var tlsConfigs = struct {
	sync.Mutex
	next int64
	m    map[int64]*tlsEntry
}{m: map[int64]*tlsEntry{}}

// sessionCacheSize is how many servers' tickets a client TLSConfig keeps
// (one a server name; the least recently used goes first).
const sessionCacheSize = 256

func tlsValueError(what string, v any, why string) error {
	return &engine.OptionError{Name: what, Value: v, Reason: why}
}

// build makes the tls.Configs of the spec: the server's and the client's.
func (s *tlsSpec) build() (*tlsEntry, error) {
	cfg := &tls.Config{NextProtos: s.ALPN}
	switch s.MinVersion {
	case "1.2":
		cfg.MinVersion = tls.VersionTLS12
	case "1.3":
		cfg.MinVersion = tls.VersionTLS13
	default:
		return nil, tlsValueError("min_version", s.MinVersion, `must be "1.2" or "1.3"`)
	}
	pairs := s.Certs
	if s.Certfile != nil {
		key := *s.Certfile // the key may be in the certificate's file, as ssl's load_cert_chain takes it
		if s.Keyfile != nil {
			key = *s.Keyfile
		}
		pairs = append([][2]string{{*s.Certfile, key}}, pairs...)
	} else if s.Keyfile != nil {
		return nil, tlsValueError("keyfile", *s.Keyfile, "given without certfile")
	}
	for _, p := range pairs {
		cert, err := loadPair(p[0], p[1])
		if err != nil {
			return nil, err
		}
		cfg.Certificates = append(cfg.Certificates, cert)
	}
	if s.Cafile != nil {
		pem, err := os.ReadFile(*s.Cafile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, tlsValueError("cafile", *s.Cafile, "holds no PEM certificate")
		}
		cfg.ClientCAs, cfg.RootCAs = pool, pool
	}
	switch s.ClientAuth {
	case "none":
	case "optional", "required":
		if s.Cafile == nil {
			return nil, tlsValueError("client_auth", s.ClientAuth, "needs cafile, the CAs client certificates are checked against")
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if s.ClientAuth == "required" {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	default:
		return nil, tlsValueError("client_auth", s.ClientAuth, `must be "none", "optional" or "required"`)
	}
	// A client checks the server against cafile, or the system's CAs (nil
	// RootCAs); it shows its certificate when the server asks for one.
	// Connections made with one TLSConfig share a session cache, so that
	// a second connect to a server resumes with a ticket the first got
	// (an abbreviated handshake: no certificate, no signature).
	client := &tls.Config{NextProtos: cfg.NextProtos, MinVersion: cfg.MinVersion, Certificates: cfg.Certificates,
		RootCAs: cfg.RootCAs, InsecureSkipVerify: !s.Verify,
		ClientSessionCache: tls.NewLRUClientSessionCache(sessionCacheSize)}
	if s.ServerName != nil {
		client.ServerName = *s.ServerName
	}
	ent := &tlsEntry{client: client, timeout: time.Duration(s.HandshakeTimeout)}
	if len(cfg.Certificates) > 0 {
		ent.server = cfg
	}
	return ent, nil
}

// loadPair reads a certificate chain and its key; a missing file is an
// OSError, a file that holds no such PEM a ValueError.
func loadPair(certfile, keyfile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certfile)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyPEM, err := os.ReadFile(keyfile)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, tlsValueError("certfile", certfile, fmt.Sprintf("with keyfile %s: %v", keyfile, err))
	}
	return cert, nil
}

// pyiocpTLSConfig builds a TLS configuration from spec (JSON) and returns
// its handle; pyiocpTLSConfigFree lets it go.
//
//export pyiocpTLSConfig
func pyiocpTLSConfig(spec *C.char, handle *C.int64_t, e *C.pyiocp_error) C.int {
	var s tlsSpec
	if err := json.Unmarshal([]byte(C.GoString(spec)), &s); err != nil {
		return setErr(e, tlsValueError("TLSConfig", "", err.Error()))
	}
	ent, err := s.build()
	if err != nil {
		return setErr(e, err)
	}
	tlsConfigs.Lock()
	tlsConfigs.next++
	tlsConfigs.m[tlsConfigs.next] = ent
	*handle = C.int64_t(tlsConfigs.next)
	tlsConfigs.Unlock()
	return C.PYIOCP_OK
}

//export pyiocpTLSConfigFree
func pyiocpTLSConfigFree(handle C.int64_t) {
	tlsConfigs.Lock()
	delete(tlsConfigs.m, int64(handle))
	tlsConfigs.Unlock()
}

// tlsConfig is the configuration of handle (0: none).
func tlsConfig(handle C.int64_t) (*tlsEntry, error) {
	if handle == 0 {
		return nil, nil
	}
	tlsConfigs.Lock()
	defer tlsConfigs.Unlock()
	ent := tlsConfigs.m[int64(handle)]
	if ent == nil {
		return nil, tlsValueError("tls", int64(handle), "no such TLSConfig")
	}
	return ent, nil
}

// serverTLS is the listener's side of handle (nil for 0).
func serverTLS(handle C.int64_t) (*tlsEntry, error) {
	ent, err := tlsConfig(handle)
	if ent != nil && ent.server == nil {
		return nil, tlsValueError("tls", "no certificate", "a listener's TLSConfig needs certfile or certs")
	}
	return ent, err
}

// listenTLS is the listen option of handle, if any.
func listenTLS(handle C.int64_t) ([]engine.ListenOption, error) {
	ent, err := serverTLS(handle)
	if ent == nil {
		return nil, err
	}
	return []engine.ListenOption{engine.WithTLS(ent.server, ent.timeout)}, nil
}

//export pyiocpListenerReloadTLS
func pyiocpListenerReloadTLS(h, lh, handle C.int64_t, e *C.pyiocp_error) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return setErr(e, engine.ErrManagerClosed)
	}
	ent.lmu.Lock()
	l := ent.listeners[int64(lh)]
	ent.lmu.Unlock()
	if l == nil {
		return setErr(e, engine.ErrClosed)
	}
	t, err := serverTLS(handle)
	if err != nil {
		return setErr(e, err)
	}
	if t == nil {
		return setErr(e, tlsValueError("tls", nil, "must be a pyiocp.TLSConfig"))
	}
	return setErr(e, l.ReloadTLS(t.server))
}

// pyiocpConnStartTLS upgrades a connection (engine.Conn.StartTLS) with
// the server's or the client's side of handle.
//
//export pyiocpConnStartTLS
func pyiocpConnStartTLS(h C.int64_t, slot C.uint32_t, id C.uint64_t, handle C.int64_t, server C.int,
	e *C.pyiocp_error) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return setErr(e, engine.ErrClosed)
	}
	t, err := tlsConfig(handle)
	if err != nil {
		return setErr(e, err)
	}
	cfg := t.client
	if server != 0 {
		if t.server == nil {
			return setErr(e, tlsValueError("tls", "no certificate", "server_side needs a TLSConfig with certfile or certs"))
		}
		cfg = t.server
	}
	return setErr(e, c.StartTLS(cfg, server != 0, t.timeout))
}

// tlsInfo is what Python's TLSInfo is made of.
type tlsInfo struct {
	Version    string  `json:"version"`
	Cipher     string  `json:"cipher"`
	ALPN       *string `json:"alpn"`
	ServerName *string `json:"server_name"`
	PeerCert   *string `json:"peer_cert"` // base64 of the DER
	Resumed    bool    `json:"resumed"`
}

// pyiocpConnTLS returns the connection's TLS state as JSON in C memory
// (the caller frees it), or NULL for a plaintext or gone connection.
//
//export pyiocpConnTLS
func pyiocpConnTLS(h C.int64_t, slot C.uint32_t, id C.uint64_t) *C.char {
	c := conn(h, slot, id)
	if c == nil {
		return nil
	}
	st := c.TLS()
	if st == nil {
		return nil
	}
	info := tlsInfo{Version: tlsVersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite), Resumed: st.DidResume}
	if st.NegotiatedProtocol != "" {
		info.ALPN = &st.NegotiatedProtocol
	}
	if st.ServerName != "" {
		info.ServerName = &st.ServerName
	}
	if len(st.PeerCertificates) > 0 {
		der := base64.StdEncoding.EncodeToString(st.PeerCertificates[0].Raw)
		info.PeerCert = &der
	}
	b, _ := json.Marshal(info)
	return C.CString(string(b))
}

// tlsVersionName words a version as Python's ssl does ("TLSv1.3").
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return tls.VersionName(v)
}
