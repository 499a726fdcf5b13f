package engine

import (
	"crypto/tls"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/tlsio"
)

// StartTLS upgrades an open plaintext connection to TLS (STARTTLS, as
// SMTP, IMAP and PostgreSQL do it): what was sent before the call goes
// out as plaintext, then the handshake, as the server (server true: cfg
// needs a certificate) or the client (cfg.ServerName, or
// InsecureSkipVerify). Bytes received from now on, and any held while
// paused, are TLS; bytes already delivered were plaintext. Sends made
// after the call are written once the handshake is done; a failed one
// closes the connection with a *TLSError. Call it from the callback that
// read the last plaintext (the command), so that no later bytes were
// delivered first. handshakeTimeout 0: DefaultHandshakeTimeout.
func (c *Conn) StartTLS(cfg *tls.Config, server bool, handshakeTimeout time.Duration) error {
	switch {
	case cfg == nil:
		return &OptionError{"tls", cfg, "must be a *tls.Config"}
	case server && len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil:
		return &OptionError{"tls", "no certificate", "the server side needs Certificates or GetCertificate"}
	case !server && cfg.ServerName == "" && !cfg.InsecureSkipVerify:
		return &OptionError{"tls", "no server name", "the client side needs ServerName (or InsecureSkipVerify)"}
	case handshakeTimeout < 0:
		return &OptionError{"handshake_timeout", handshakeTimeout, "must not be negative"}
	case handshakeTimeout == 0:
		handshakeTimeout = DefaultHandshakeTimeout
	}
	t := &tlsConn{timeout: handshakeTimeout, upgrade: true}
	if server {
		t.s = tlsio.Server(cfg.Clone(), c.tlsOut)
	} else {
		t.s = tlsio.Client(cfg.Clone(), c.tlsOut)
	}
	c.mu.Lock()
	switch {
	case c.req != closeNone || c.writeShut || c.freed:
		c.mu.Unlock()
		return ErrClosed
	case !c.opened:
		c.mu.Unlock()
		return &OptionError{"start_tls", "not connected", "the connection must be open"}
	case c.tlsc() != nil:
		c.mu.Unlock()
		return &OptionError{"start_tls", "already TLS", "the connection speaks TLS already"}
	}
	c.tlsp.Store(t)
	c.mu.Unlock()
	c.w.enqueue(request{kind: reqStartTLS, c: c})
	return nil
}

// upgrade starts the handshake StartTLS asked for, on c's worker. What
// was held while paused came after the command: it is the peer's first
// TLS bytes.
func (w *worker) upgrade(c *Conn) {
	if c.state != stateOpen {
		return // closing: the session is dropped with it
	}
	if n := c.held.len(); n > 0 {
		buf := make([]byte, n)
		c.held.read(buf)
		c.held.reset()
		c.tlsc().s.Feed(buf)
	}
	w.handshake(c)
}
