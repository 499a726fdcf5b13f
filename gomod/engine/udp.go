package engine

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// MaxDatagram is the longest datagram SendTo takes: an IPv4 UDP payload
// (an IPv6 one may be 20 bytes longer: MaxDatagram6).
const (
	MaxDatagram  = 65507
	MaxDatagram6 = 65527
)

// Defaults of the UDP options.
const (
	DefaultDatagramSize     = 65536 // every datagram fits
	DefaultDatagramReceives = 32
)

// ErrTruncated is what a *TruncatedError is (errors.Is).
var ErrTruncated = errors.New("datagram truncated")

// TruncatedError reports a datagram longer than its endpoint's receive
// size (WithDatagramSize): it was dropped, not delivered short.
type TruncatedError struct {
	Size  int // the datagram's length
	Limit int // the endpoint's receive size
}

func (e *TruncatedError) Error() string {
	return fmt.Sprintf("datagram of %d bytes dropped: longer than the receive size (%d)", e.Size, e.Limit)
}

func (e *TruncatedError) Is(target error) bool { return target == ErrTruncated }

// WithBroadcast sets SO_BROADCAST on a UDP endpoint.
func WithBroadcast(on bool) ListenOption {
	return func(o *listenOptions) error { o.broadcast, o.udp = on, true; return nil }
}

// WithRemote connects a UDP endpoint to addr: it receives from addr only,
// and SendTo takes no address (or addr itself).
func WithRemote(addr netip.AddrPort) ListenOption {
	return func(o *listenOptions) error {
		if !addr.Addr().IsValid() || addr.Port() == 0 {
			return &OptionError{"remote", addr, "must be an IP address and a port other than 0"}
		}
		o.remote, o.udp = addr, true
		return nil
	}
}

// WithDatagramSize sets a UDP endpoint's receive size: the longest
// datagram it delivers.
func WithDatagramSize(n int) ListenOption {
	return func(o *listenOptions) error {
		if n < 1 || n > DefaultDatagramSize {
			return &OptionError{"datagram_size", n, "must be between 1 and 65536"}
		}
		o.dgramSize, o.udp = n, true
		return nil
	}
}

// WithDatagramReceives sets how many receives a UDP endpoint keeps
// posted: the datagrams one system call (or submission) may take.
func WithDatagramReceives(n int) ListenOption {
	return func(o *listenOptions) error {
		if n < 1 || n > poller.MaxDatagramSlots {
			return &OptionError{"receives", n, "must be between 1 and 256"}
		}
		o.dgramRecvs, o.udp = n, true
		return nil
	}
}

// Endpoint is a UDP socket bound by BindUDP, owned by one worker for its
// life; SendTo, Close and the accessors are safe from any thread. Datagrams arrive as EventDatagram (DatagramHandler's
// OnDatagram): one event per datagram, never split or merged, with the
// address it came from; a reply sent to that address goes back to it.
// SendTo queues a datagram (BufferFull over the send buffer limit, as a
// connection's Send) and the worker sends what its handlers queued in a
// round together (sendmmsg; one io_uring submission). The endpoint keeps
// WithDatagramReceives receives posted, each into a buffer of
// WithDatagramSize bytes; a datagram longer than that is not delivered
// short: it is dropped, counted (Stats.DatagramsTruncated) and reported
// as an EventDatagram whose Err is a *TruncatedError.
//
// UDP has no flow control: datagrams the application is too slow for
// are dropped by the kernel when the socket's receive buffer fills. Nor
// does it promise order: an endpoint keeps several receives posted, and
// IOCP may complete them in another order than the datagrams arrived.
// An endpoint's events come on its worker; with PollShared they may be
// handed to several threads at once (an endpoint is not held as a
// connection is).
type Endpoint struct {
	m        *Manager
	w        *worker
	fd       poller.Sock
	ref      poller.Ref
	addr     netip.AddrPort
	remote   netip.AddrPort // connected: the peer; else invalid
	v6       bool
	size     int
	receives int
	asked    atomic.Bool   // Close was called
	done     chan struct{} // closed once the socket is closed

	mu          sync.Mutex
	queue       []poller.Datagram // queued by SendTo; queue[:inflight] are posted
	bufs        []*dgramBuf       // queue[i].Data's pooled buffer (udp_buffer.go)
	pending     int               // bytes in queue
	inflight    int
	sending     bool // a send is posted (written by the worker only)
	flushQueued bool
	closed      bool // SendTo fails from now on

	// Owned by the worker.
	token       uint64
	outstanding int // receives posted and not completed
	closing     bool
	canceled    bool
}

// BindUDP opens a UDP endpoint bound to addr (port 0 picks a free one).
// Of the options, WithReusePort, WithBroadcast, WithRemote,
// WithDatagramSize and WithDatagramReceives apply; the others are
// stream options (an OptionError).
func (m *Manager) BindUDP(addr netip.AddrPort, opts ...ListenOption) (*Endpoint, error) {
	lo, err := newListenOptions(opts)
	if err != nil {
		return nil, err
	}
	switch {
	case !addr.Addr().IsValid():
		return nil, &OptionError{"address", addr, "must be an IP address"}
	case lo.sock != (SockOptions{}) || lo.firstData || lo.framing != nil || lo.tls != nil || lo.proxy != nil:
		return nil, &OptionError{"options", "udp", "socket options, first_data, framing, tls and proxy_protocol are for streams"}
	case lo.remote.IsValid() && !is6(addr.Addr()) && is6(lo.remote.Addr()):
		return nil, &OptionError{"remote", lo.remote, "must be an IPv4 address for an IPv4 endpoint"}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closing.Load() {
		return nil, ErrManagerClosed
	}
	fd, local, err := poller.OpenUDP(addr, lo.reusePort, lo.broadcast, lo.remote)
	if err != nil {
		return nil, err
	}
	e := &Endpoint{m: m, w: m.pickWorker(), fd: fd, addr: local, v6: is6(local.Addr()),
		size: lo.dgramSize, receives: lo.dgramRecvs, done: make(chan struct{})}
	if lo.remote.IsValid() {
		e.remote = e.normalize(lo.remote)
	}
	m.lmu.Lock()
	m.endpoints[e] = struct{}{}
	m.lmu.Unlock()
	if !e.w.enqueue(request{kind: reqBindUDP, v: e}) {
		poller.CloseSock(fd)
		m.forgetEndpoint(e)
		return nil, ErrManagerClosed
	}
	return e, nil
}

// is6 reports whether ip is IPv6 proper (not IPv4-mapped).
func is6(ip netip.Addr) bool { return ip.Is6() && !ip.Is4In6() }

// normalize spells a in the endpoint's family, as the kernel reports
// peers: an IPv4 address mapped on an IPv6 endpoint.
func (e *Endpoint) normalize(a netip.AddrPort) netip.AddrPort {
	if e.v6 {
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()).WithZone(a.Addr().Zone()), a.Port())
	}
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// Addr is the address the endpoint is bound to (the port filled in).
func (e *Endpoint) Addr() netip.AddrPort { return e.addr }

// Remote is a connected endpoint's peer (WithRemote); invalid otherwise.
func (e *Endpoint) Remote() netip.AddrPort { return e.remote }

// String names the endpoint in logs.
func (e *Endpoint) String() string { return "udp:" + e.addr.String() }

// Done is closed once the endpoint's socket is closed.
func (e *Endpoint) Done() <-chan struct{} { return e.done }

// Closed reports whether Close was called (or the manager closed it).
func (e *Endpoint) Closed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Pending is the bytes queued by SendTo and not yet sent.
func (e *Endpoint) Pending() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.pending
}

// SendTo queues data as one datagram to addr (a connected endpoint: the
// zero AddrPort or its remote). It fails with ErrBufferFull, queuing
// nothing, when the endpoint's pending bytes would pass the send buffer
// limit; with ErrClosed after Close; with an *OptionError for a datagram
// over MaxDatagram (MaxDatagram6 to an IPv6 address) or an address the
// endpoint cannot send to. data may be reused once it returns.
func (e *Endpoint) SendTo(data []byte, addr netip.AddrPort) error {
	addr, err := e.destination(addr)
	if err != nil {
		return err
	}
	to := addr
	if !to.IsValid() {
		to = e.remote
	}
	limit := MaxDatagram
	if is6(to.Addr()) {
		limit = MaxDatagram6
	}
	if len(data) > limit {
		return &OptionError{"data", len(data), fmt.Sprintf("a datagram to %v takes at most %d bytes", to, limit)}
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if e.pending+len(data) > e.m.opts.sendLimit {
		e.mu.Unlock()
		return ErrBufferFull
	}
	buf := copyDatagram(data)
	d := poller.Datagram{Addr: addr}
	if buf != nil {
		d.Data = buf.b
	}
	e.queue = append(e.queue, d)
	e.bufs = append(e.bufs, buf)
	e.pending += len(data)
	e.m.pendingSend.Add(int64(len(data)))
	ask := !e.sending && !e.flushQueued
	e.flushQueued = e.flushQueued || ask
	e.mu.Unlock()
	if ask {
		// The worker sends at the start of its next round: from one of
		// its own handlers, with everything else the round queued.
		e.w.enqueue(request{kind: reqFlushUDP, v: e})
	}
	return nil
}

// destination checks addr for SendTo and spells it as the socket takes
// it: zero for a connected endpoint's peer.
func (e *Endpoint) destination(addr netip.AddrPort) (netip.AddrPort, error) {
	if e.remote.IsValid() {
		if !addr.IsValid() || e.normalize(addr) == e.remote {
			return netip.AddrPort{}, nil
		}
		return addr, &OptionError{"addr", addr, fmt.Sprintf("a connected endpoint sends to its remote (%v) only", e.remote)}
	}
	switch {
	case !addr.Addr().IsValid():
		return addr, &OptionError{"addr", addr, "required: the endpoint is not connected"}
	case addr.Port() == 0:
		return addr, &OptionError{"addr", addr, "the port must not be 0"}
	case !e.v6 && is6(addr.Addr()):
		return addr, &OptionError{"addr", addr, "an IPv4 endpoint sends to IPv4 addresses only"}
	}
	return e.normalize(addr), nil
}

// Close stops receiving, sends what SendTo queued, then closes the
// socket; Done says when. SendTo fails from now on. Idempotent.
func (e *Endpoint) Close() error {
	if e.asked.Swap(true) {
		return nil
	}
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.w.enqueue(request{kind: reqCloseUDP, v: e})
	return nil
}

// Endpoints returns the endpoints still open.
func (m *Manager) Endpoints() []*Endpoint {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	return slices.Collect(maps.Keys(m.endpoints))
}

func (m *Manager) forgetEndpoint(e *Endpoint) {
	m.lmu.Lock()
	delete(m.endpoints, e)
	m.lmu.Unlock()
}
