package engine

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// ResolveError is a name that could not be resolved: EventClose's error
// of a ConnectHost. Python: socket.gaierror.
type ResolveError struct {
	Host string
	Err  error // the resolver's (a *net.DNSError, mostly)
}

func (e *ResolveError) Error() string { return fmt.Sprintf("resolve %q: %v", e.Host, e.Err) }
func (e *ResolveError) Unwrap() error { return e.Err }

// ConnectHost is Connect to a host name, returning the connection at once:
// the name is resolved off the caller's thread (by Go's resolver, on a
// goroutine of the lookup's own), then its addresses are raced in Happy
// Eyeballs order (RFC 8305: the families alternating, the resolver's
// first family first, the next address started 250 ms after the last or
// as soon as it fails; race.go) until one connects. EventConnect
// follows, or EventClose with a *ResolveError, the last address's error,
// or ErrConnectTimeout once timeout (0: none) has passed since the call,
// the lookup included. An IP address is connected to as Connect does.
func (m *Manager) ConnectHost(host string, port uint16, timeout time.Duration, so ...SockOptions) (*Conn, error) {
	return m.connectHost(host, port, timeout, nil, so)
}

func (m *Manager) connectHost(host string, port uint16, timeout time.Duration, ct *clientTLS, so []SockOptions) (*Conn, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return m.connect(netip.AddrPortFrom(ip, port), timeout, ct, so)
	}
	if port == 0 {
		return nil, &OptionError{"port", port, "must be 1-65535"}
	}
	opts, err := outboundOptions(timeout, so)
	if err != nil {
		return nil, err
	}
	// The lookup ends with the connection: closed, timed out, or the
	// manager closed (finalize cancels it).
	var ctx context.Context
	var cancel context.CancelFunc
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(context.Background(), timeout)
	} else {
		ctx, cancel = context.WithCancel(context.Background())
	}
	c, err := m.outbound(timeout, ct, func() (*Conn, error) {
		c := m.newConn(poller.NoSock, netip.AddrPort{}, true)
		c.byName = &byName{resolving: true, sock: opts, endLookup: cancel}
		return c, nil
	})
	if err != nil {
		cancel()
		return nil, err
	}
	go m.resolve(ctx, c, host, port)
	return c, nil
}

// Lookup resolves a host name to its addresses, in the resolver's order.
type Lookup func(ctx context.Context, host string) ([]netip.Addr, error)

// WithLookup makes ConnectHost resolve names with f instead of Go's
// resolver (net.DefaultResolver): a name service of the application's own,
// or a test's.
func WithLookup(f Lookup) Option {
	return func(o *options) error { o.lookup = f; return nil }
}

// byName is what only a connection to a host name needs; every other
// connection carries a nil pointer instead.
type byName struct {
	resolving bool             // waiting for the lookup
	addrs     []netip.AddrPort // the addresses not tried yet
	racing    []*attempt       // the attempts in flight (race.go)
	nextAt    int64            // when the next address starts unless one connects first; 0: not before one fails
	lastErr   error            // the last failed attempt's
	sock      SockOptions      // for each address's socket
	endLookup func()           // cancels the lookup (set before the connect is queued)
}

// resolved is what a lookup hands the connection's worker.
type resolved struct {
	addrs []netip.AddrPort
	err   error
}

func (m *Manager) resolve(ctx context.Context, c *Conn, host string, port uint16) {
	lookup := m.opts.lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	ips, err := lookup(ctx, host)
	r := resolved{err: err}
	if err == nil && len(ips) == 0 {
		r.err = &net.DNSError{Err: "no address", Name: host, IsNotFound: true}
	}
	if r.err != nil {
		r.err = &ResolveError{Host: host, Err: r.err}
	} else {
		r.addrs = eyeballsOrder(ips, port)
	}
	// Refused once the worker has quit: the connection went with it.
	c.w.enqueue(request{kind: reqResolved, c: c, v: r})
}

// eyeballsOrder orders the addresses as RFC 8305 section 4 does: the
// families alternate, starting with the family of the resolver's first.
func eyeballsOrder(ips []netip.Addr, port uint16) []netip.AddrPort {
	var first, second []netip.Addr
	for _, ip := range ips {
		ip = ip.Unmap()
		if ip.Is4() == ips[0].Unmap().Is4() {
			first = append(first, ip)
		} else {
			second = append(second, ip)
		}
	}
	out := make([]netip.AddrPort, 0, len(ips))
	for i := 0; i < len(first) || i < len(second); i++ {
		if i < len(first) {
			out = append(out, netip.AddrPortFrom(first[i], port))
		}
		if i < len(second) {
			out = append(out, netip.AddrPortFrom(second[i], port))
		}
	}
	return out
}

// applyResolved starts connecting to the first address of a lookup, or
// ends the connection with the lookup's error.
func (w *worker) applyResolved(c *Conn, r resolved) {
	if c.state != stateConnecting || !c.byName.resolving {
		return // closed meanwhile
	}
	c.byName.resolving = false
	c.byName.endLookup()
	if r.err != nil {
		w.abort(c, r.err, false)
		return
	}
	c.byName.addrs = r.addrs
	w.startAttempt(c) // race.go
}
