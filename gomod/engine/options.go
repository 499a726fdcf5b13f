package engine

import (
	"net/netip"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// Defaults, the same in Go and Python.
const (
	DefaultWorkers         = 1
	DefaultBackend         = "auto"
	DefaultRecvBufferLimit = 256 << 10
	DefaultSendBufferLimit = 4 << 20
	DefaultBacklog         = 1024
	DefaultAccepts         = 16
	DefaultCloseTimeout    = 10 * time.Second
	MaxAccepts             = 1024
	MaxWorkers             = 256
)

// Option configures a Manager. Names follow the Python keyword arguments.
type Option func(*options) error

type options struct {
	workers       int
	backend       string
	recvLimit     int
	sendLimit     int
	sendLow       int // -1: a quarter of sendLimit
	idleTimeout   time.Duration
	acceptTimeout time.Duration
	closeTimeout  time.Duration
	maxConns      int
	events        EventMask
	eventsSet     bool
	fixedThreads  int // 0: decided by the handler; 1: yes; -1: no
	logger        func(string)
	lookup        Lookup // nil: Go's resolver
}

func defaultOptions() options {
	return options{
		workers:      DefaultWorkers,
		backend:      DefaultBackend,
		recvLimit:    DefaultRecvBufferLimit,
		sendLimit:    DefaultSendBufferLimit,
		sendLow:      -1,
		closeTimeout: DefaultCloseTimeout,
	}
}

// WithWorkers sets the number of workers (completion ports), 1..MaxWorkers.
func WithWorkers(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxWorkers {
			return &OptionError{"workers", n, "must be between 1 and 256"}
		}
		o.workers = n
		return nil
	}
}

// WithBackend picks the completion port implementation: "auto" or one of
// Backends().
func WithBackend(name string) Option {
	return func(o *options) error { o.backend = name; return nil }
}

// WithRecvBufferLimit bounds a connection's received but undelivered bytes;
// at the limit the worker stops reading it (the peer's TCP window closes).
func WithRecvBufferLimit(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return &OptionError{"recv_buffer_limit", n, "must be at least 1"}
		}
		o.recvLimit = n
		return nil
	}
}

// WithSendBufferLimit bounds a connection's pending (unsent) bytes; a send
// that would pass it fails with ErrBufferFull and queues nothing.
func WithSendBufferLimit(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return &OptionError{"send_buffer_limit", n, "must be at least 1"}
		}
		o.sendLimit = n
		return nil
	}
}

// WithSendLowWatermark sets the pending byte count at or under which
// OnDrain follows a full buffer (default: a quarter of the limit).
func WithSendLowWatermark(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return &OptionError{"send_low_watermark", n, "must not be negative"}
		}
		o.sendLow = n
		return nil
	}
}

// WithIdleTimeout closes a connection, with ErrIdleTimeout, that moved no
// byte either way for d. Zero disables it.
func WithIdleTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return &OptionError{"idle_timeout", d.Seconds(), "must not be negative"}
		}
		o.idleTimeout = d
		return nil
	}
}

// WithAcceptTimeout closes an accepted connection, with ErrAcceptTimeout,
// that sent nothing within d of being accepted (connected but silent is an
// attack). Zero disables it.
func WithAcceptTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return &OptionError{"accept_timeout", d.Seconds(), "must not be negative"}
		}
		o.acceptTimeout = d
		return nil
	}
}

// WithCloseTimeout bounds a graceful close (Close, a peer's EOF without an
// EOF handler, Shutdown): a connection still flushing d after its close
// began is reset and closes with ErrCloseTimeout. While it flushes, it
// reads and drops what the peer sends, up to the receive buffer limit,
// then stops reading. Zero: no limit (DefaultCloseTimeout otherwise).
func WithCloseTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return &OptionError{"close_timeout", d.Seconds(), "must not be negative"}
		}
		o.closeTimeout = d
		return nil
	}
}

// WithMaxConnections caps open connections, accepted and outbound together;
// one accepted over the cap is closed at once, never announced, and counted
// as rejected; Connect over it fails with ErrTooManyConnections. Zero: no
// cap.
func WithMaxConnections(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return &OptionError{"max_connections", n, "must not be negative"}
		}
		o.maxConns = n
		return nil
	}
}

// WithEvents chooses which optional events are produced (by default those
// the Handler implements). Bindings use it: a Python handler that does not
// override on_send gets no send events at all.
func WithEvents(mask EventMask) Option {
	return func(o *options) error { o.events = mask; o.eventsSet = true; return nil }
}

// WithFixedThreads says whether each worker is always polled from the same
// OS thread (the first to poll it). Run, Start and Close do that; so does
// the Python binding's worker threads. It lets io_uring run as a single
// issuer with deferred task work. By default it is on when the manager has
// a Handler and off when the application calls Poll itself.
func WithFixedThreads(on bool) Option {
	return func(o *options) error {
		o.fixedThreads = -1
		if on {
			o.fixedThreads = 1
		}
		return nil
	}
}

// WithLogger sends the engine's rare log lines (a backend falling back, an
// accept failing for want of descriptors) to f instead of the standard
// logger.
func WithLogger(f func(string)) Option {
	return func(o *options) error { o.logger = f; return nil }
}

// ListenOption configures one listener.
type ListenOption func(*listenOptions) error

type listenOptions struct {
	backlog   int
	accepts   int
	reusePort bool
	sock      SockOptions
	framing   Framing
	tls       *listenerTLS
	firstData bool           // first_data.go
	proxy     *listenerProxy // proxy.go

	// UDP's (udp.go); udp: one of them was given.
	udp        bool
	broadcast  bool
	remote     netip.AddrPort
	dgramSize  int
	dgramRecvs int
}

// newListenOptions applies opts over the defaults.
func newListenOptions(opts []ListenOption) (listenOptions, error) {
	lo := listenOptions{backlog: DefaultBacklog, accepts: DefaultAccepts,
		dgramSize: DefaultDatagramSize, dgramRecvs: DefaultDatagramReceives}
	for _, opt := range opts {
		if err := opt(&lo); err != nil {
			return lo, err
		}
	}
	return lo, nil
}

// WithBacklog sets the kernel's queue of connections not yet accepted.
func WithBacklog(n int) ListenOption {
	return func(o *listenOptions) error {
		if n < 1 {
			return &OptionError{"backlog", n, "must be at least 1"}
		}
		o.backlog = n
		return nil
	}
}

// WithAccepts sets how many accepts the listener keeps posted
// (AcceptEx-style; on epoll, how many accept4 calls one readiness may make).
func WithAccepts(n int) ListenOption {
	return func(o *listenOptions) error {
		if n < 1 || n > MaxAccepts {
			return &OptionError{"accepts", n, "must be between 1 and 1024"}
		}
		o.accepts = n
		return nil
	}
}

// WithReusePort sets SO_REUSEPORT, so several processes can share a port.
func WithReusePort(on bool) ListenOption {
	return func(o *listenOptions) error { o.reusePort = on; return nil }
}

// Backends lists the completion port implementations that work here,
// preferred first ("auto" picks the first).
func Backends() []string { return poller.Backends() }
