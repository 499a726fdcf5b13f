package engine

import (
	"errors"
	"net/netip"
	"strings"
	"time"
)

// A listener behind a load balancer that speaks the PROXY protocol: each
// accepted connection's first bytes are the header naming the real client.
// The engine reads it before anything else (before the TLS handshake, too),
// from the bytes already received; only then is the connection announced,
// with Peer the client's address and Proxy the balancer's. A connection
// from a source not allowed to send headers, or whose header is missing,
// malformed or late, is reset unseen and counted in Stats.ProxyErrors.

// DefaultProxyTimeout bounds the wait for a header when the manager has no
// accept timeout.
const DefaultProxyTimeout = 10 * time.Second

// LoopbackPrefixes are the sources a PROXY listener trusts by default.
var LoopbackPrefixes = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// ProxyError is why a PROXY listener dropped a connection unseen.
type ProxyError struct{ Err error }

func (e *ProxyError) Error() string { return e.Err.Error() }
func (e *ProxyError) Unwrap() error { return e.Err }

var (
	errProxyTimeout    = &ProxyError{errors.New("no PROXY protocol header within the accept timeout")}
	errProxyNotAllowed = &ProxyError{errors.New("PROXY protocol header from a source outside proxy_allow_from")}
)

// listenerProxy is a PROXY listener's setting, shared by its connections.
type listenerProxy struct {
	mode  ProxyMode
	allow []netip.Prefix
}

// WithProxyProtocol makes the listener read a PROXY protocol header of the
// given mode first on every connection, from sources in allow only (nil:
// LoopbackPrefixes). A Unix domain listener's peers are local and always
// allowed. ProxyOff leaves the listener as it is.
func WithProxyProtocol(mode ProxyMode, allow []netip.Prefix) ListenOption {
	return func(o *listenOptions) error {
		if mode > ProxyAuto {
			return &OptionError{"proxy_protocol", mode, "must be off, v1, v2 or auto"}
		}
		if mode == ProxyOff {
			o.proxy = nil
			return nil
		}
		if allow == nil {
			allow = LoopbackPrefixes
		}
		p := &listenerProxy{mode: mode, allow: make([]netip.Prefix, 0, len(allow))}
		for _, a := range allow {
			if !a.IsValid() {
				return &OptionError{"proxy_allow_from", a, "must be valid CIDR prefixes"}
			}
			p.allow = append(p.allow, a.Masked())
		}
		o.proxy = p
		return nil
	}
}

// ParseProxyMode reads "off", "v1", "v2" or "auto".
func ParseProxyMode(s string) (ProxyMode, error) {
	for i, name := range []string{"off", "v1", "v2", "auto"} {
		if s == name {
			return ProxyMode(i), nil
		}
	}
	return ProxyOff, &OptionError{"proxy_protocol", s, `must be None, "v1", "v2" or "auto"`}
}

// ParsePrefixes reads a comma-separated list of CIDR prefixes (a bare
// address is its own /32 or /128).
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil || a.Zone() != "" {
				return nil, &OptionError{"proxy_allow_from", f, "must be CIDR prefixes such as 10.0.0.0/8 or ::1/128"}
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	if out == nil {
		out = []netip.Prefix{} // none allowed, which is not the default
	}
	return out, nil
}

func (p *listenerProxy) allows(c *Conn) bool {
	if c.unix != nil {
		return true
	}
	a := c.peer.Addr().Unmap()
	for _, pre := range p.allow {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// proxyWait is a connection's header, while it comes.
type proxyWait struct {
	mode ProxyMode
	buf  []byte
}

// Proxy is the address of the load balancer that sent a PROXY header
// naming the connection's Peer; invalid when no header named one (no
// PROXY listener, or a LOCAL or UNKNOWN header), and for a Unix domain
// connection, whose balancer is its peer's name (UnixNames), and whose
// Peer is valid only when a header named the client. Valid once announced.
func (c *Conn) Proxy() netip.AddrPort { return c.proxied }

// proxyTimeout is how long a PROXY listener waits for a header.
func (m *Manager) proxyTimeout() time.Duration {
	if m.opts.acceptTimeout > 0 {
		return m.opts.acceptTimeout
	}
	return DefaultProxyTimeout
}

// startProxy makes an adopted connection of a PROXY listener wait for its
// header; false: its source may not send one, and it was reset.
func (w *worker) startProxy(c *Conn, lp *listenerProxy) bool {
	c.proxyw = &proxyWait{mode: lp.mode}
	if !lp.allows(c) {
		w.abort(c, errProxyNotAllowed, true)
		return false
	}
	return true
}

// proxyRecv takes received bytes of a connection waiting for its header.
// Once the header is whole the connection goes on as an accepted one
// (its TLS handshake, or its announcement), with the bytes after the
// header as the first it received.
func (w *worker) proxyRecv(c *Conn, data []byte) {
	pw := c.proxyw
	pw.buf = append(pw.buf, data...)
	h, n, err := parseProxyHeader(pw.buf, pw.mode)
	switch {
	case err != nil:
		w.abort(c, &ProxyError{err}, true)
		return
	case n == 0:
		w.rearm = append(w.rearm, c)
		return
	}
	rest := pw.buf[n:]
	c.proxyw = nil
	if !h.local {
		c.proxied, c.peer = c.peer, h.src
	}
	w.schedule(c) // the header's deadline is gone
	w.begin(c)
	if len(rest) == 0 {
		w.rearm = append(w.rearm, c)
		return
	}
	if c.tlsc() != nil {
		w.received(c, rest) // the session copies it
		return
	}
	c.gotData = true
	c.held.append(rest) // delivered from spill memory, as data held while paused
	w.resume = append(w.resume, c)
}

// proxyEnd is finalize's part: a connection that ended waiting for its
// header counts as a PROXY error, whatever ended it.
func (w *worker) proxyEnd(c *Conn) {
	if c.proxyw != nil {
		c.proxyw = nil
		w.stats.proxyErrors.Add(1)
	}
}
