package engine

import (
	"crypto/tls"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/tlsio"
)

// clientTLS is what ConnectTLS gives the connection it makes.
type clientTLS struct {
	cfg     *tls.Config
	timeout time.Duration
}

// ConnectTLS is ConnectHost over TLS with cfg (its ServerName, when empty,
// is host: the name the server's certificate must carry, sent by SNI).
// The handshake follows the connect, within handshakeTimeout (0:
// DefaultHandshakeTimeout); EventConnect comes once it succeeded, and a
// failure ends the connection with an EventClose carrying a *TLSError.
// What is sent before is written once the handshake is done; Close before
// then closes after it.
func (m *Manager) ConnectTLS(host string, port uint16, timeout time.Duration, cfg *tls.Config,
	handshakeTimeout time.Duration, so ...SockOptions) (*Conn, error) {
	switch {
	case cfg == nil:
		return nil, &OptionError{"tls", cfg, "must be a *tls.Config"}
	case handshakeTimeout < 0:
		return nil, &OptionError{"handshake_timeout", handshakeTimeout, "must not be negative"}
	case handshakeTimeout == 0:
		handshakeTimeout = DefaultHandshakeTimeout
	}
	cfg = cfg.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	return m.connectHost(host, port, timeout, &clientTLS{cfg, handshakeTimeout}, so)
}

func newClientTLS(c *Conn, ct *clientTLS) *tlsConn {
	t := &tlsConn{timeout: ct.timeout}
	t.s = tlsio.Client(ct.cfg, c.tlsOut)
	return t
}

// tlsEarly reports whether c has bytes sent before its handshake ended,
// waiting to be written.
func (c *Conn) tlsEarly() bool {
	if c.tlsc() == nil {
		return false
	}
	c.tlsc().wmu.Lock()
	defer c.tlsc().wmu.Unlock()
	return c.tlsc().early.len() > 0
}

// tlsHandshaking reports whether c's handshake is still running (so that
// a close or shutdown_write asked meanwhile waits for it).
func (c *Conn) tlsHandshaking() bool { return c.tlsc() != nil && !c.tlsc().done }
