package engine

import (
	"errors"
	"fmt"
	"log"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// Manager owns the workers, the connection table and the listeners.
type Manager struct {
	opts     options
	h        Handler
	mask     EventMask
	lowWater int
	workers  []*worker
	table    *table
	backend  string
	epoch    time.Time
	logger   func(string)

	// mu orders Shutdown against the calls that queue new work (Listen,
	// Connect, Post): none is queued after a worker got the shutdown request.
	mu      sync.RWMutex
	closing atomic.Bool
	started bool
	runWG   sync.WaitGroup
	closed  chan struct{} // closed once every worker has quit and the ports are released
	release sync.Once

	lmu       sync.Mutex
	listeners map[*Listener]struct{}
	endpoints map[*Endpoint]struct{} // UDP (udp.go)

	rr            atomic.Uint32
	nconns        atomic.Int64
	pendingSend   atomic.Int64
	pausedReading atomic.Int64
	rejected      atomic.Uint64

	tlsState
}

// New creates a manager. h receives events when the manager runs its own
// workers (Run, Start, Close); with a nil handler the application drives
// the workers with Poll.
func New(h Handler, opts ...Option) (*Manager, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	low := o.sendLimit / 4
	if o.sendLow >= 0 {
		if o.sendLow >= o.sendLimit {
			return nil, &OptionError{"send_low_watermark", o.sendLow, "must be below send_buffer_limit"}
		}
		low = o.sendLow
	}
	mask := o.events
	if !o.eventsSet {
		mask = MaskSend | MaskDrain | MaskEOF
		if h != nil {
			mask = maskFor(h)
		}
	}
	m := &Manager{
		opts:      o,
		h:         h,
		mask:      mask,
		lowWater:  low,
		table:     newTable(),
		epoch:     time.Now(),
		closed:    make(chan struct{}),
		listeners: make(map[*Listener]struct{}),
		endpoints: make(map[*Endpoint]struct{}),
		logger:    o.logger,
	}
	if m.logger == nil {
		m.logger = func(s string) { log.Print("pyiocp: " + s) }
	}
	cfg := poller.Config{FixedThread: o.fixedThreads > 0 || (o.fixedThreads == 0 && h != nil)}
	for i := 0; i < o.workers; i++ {
		p, skipped, err := poller.Open(o.backend, cfg)
		if err == nil {
			if skipped != nil && i == 0 {
				m.logf("%v; using %s", skipped, p.Name())
			}
			var w *worker
			if w, err = newWorker(m, i, p); err == nil {
				m.workers = append(m.workers, w)
				continue
			}
			p.Close()
		}
		for _, w := range m.workers {
			w.p.Close()
			w.spill.free()
			w.plain.free()
		}
		var ub *poller.UnknownBackendError
		if errors.As(err, &ub) {
			return nil, &OptionError{"backend", o.backend, "must be one of auto, " + strings.Join(poller.Backends(), ", ")}
		}
		return nil, err
	}
	m.backend = m.workers[0].p.Name()
	return m, nil
}

// SetLogger replaces where the engine's log lines go; call it before the
// workers run (WithLogger also covers what New itself logs).
func (m *Manager) SetLogger(f func(string)) { m.logger = f }

func (m *Manager) logf(format string, args ...any) { m.logger(fmt.Sprintf(format, args...)) }

func (m *Manager) clock() int64 { return int64(time.Since(m.epoch)) }

func (m *Manager) pickWorker() *worker {
	return m.workers[int(m.rr.Add(1)-1)%len(m.workers)]
}

// Backend is the name of the completion port implementation in use.
func (m *Manager) Backend() string { return m.backend }

// Workers is the number of workers.
func (m *Manager) Workers() int { return len(m.workers) }

// Connections is the number of open connections (a closed one stops
// counting when it is freed, before its slot is: see close.go).
func (m *Manager) Connections() int { return int(m.nconns.Load()) }

// Get finds a connection by id; nil once it is gone.
func (m *Manager) Get(id uint64) *Conn { return m.table.get(id) }

// Lookup is Get for the hot path: the connection in slot if it still is
// connection id, found without a lock or a hash lookup.
func (m *Manager) Lookup(slot uint32, id uint64) *Conn { return m.table.lookup(slot, id) }

// Listen opens a listening socket on addr (port 0 picks a free one).
func (m *Manager) Listen(addr netip.AddrPort, opts ...ListenOption) (*Listener, error) {
	lo, err := newListenOptions(opts)
	if err != nil {
		return nil, err
	}
	if lo.udp {
		return nil, &OptionError{"options", "tcp", "broadcast, remote and datagram options are UDP's"}
	}
	if !addr.Addr().IsValid() {
		return nil, &OptionError{"address", addr, "must be an IP address"}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closing.Load() {
		return nil, ErrManagerClosed
	}
	fd, local, err := poller.ListenTCP(addr, lo.backlog, lo.reusePort, &lo.sock)
	if err != nil {
		return nil, err
	}
	if lo.firstData {
		// Before a peer can connect: set on the listener, not when its
		// worker takes it up.
		if err := poller.DeferAccept(fd, m.firstDataTimeout()); err != nil {
			poller.CloseSock(fd)
			return nil, err
		}
	}
	return m.addListener(&Listener{fd: fd, addr: local}, lo)
}

// addListener gives a new listener (its socket and name set) the options
// and a worker, and hands it to that worker (m.mu read-held).
func (m *Manager) addListener(l *Listener, lo listenOptions) (*Listener, error) {
	l.m, l.w, l.done = m, m.pickWorker(), make(chan struct{})
	l.accepts, l.sock, l.framing, l.firstData = lo.accepts, lo.sock, lo.framing, lo.firstData
	l.tls.Store(lo.tls)
	l.proxy = lo.proxy
	m.lmu.Lock()
	m.listeners[l] = struct{}{}
	m.lmu.Unlock()
	if !l.w.enqueue(request{kind: reqListen, v: l}) {
		poller.CloseSock(l.fd)
		l.removeFile()
		m.forgetListener(l)
		return nil, ErrManagerClosed
	}
	return l, nil
}

func (m *Manager) forgetListener(l *Listener) {
	m.lmu.Lock()
	delete(m.listeners, l)
	m.lmu.Unlock()
}

// Listeners returns the listeners still open.
func (m *Manager) Listeners() []*Listener {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	return slices.Collect(maps.Keys(m.listeners))
}

// Post delivers v as an EventPost on one of the workers (round-robin), like
// PostQueuedCompletionStatus. Safe from any thread.
func (m *Manager) Post(v any) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closing.Load() {
		return ErrManagerClosed
	}
	m.pickWorker().enqueue(request{kind: reqPost, v: v})
	return nil
}

// Shutdown starts a graceful close and returns at once: listeners stop,
// every connection flushes its pending bytes and closes; connections still
// flushing after timeout are reset (EventClose with ErrCloseTimeout). Each
// worker then quits: its Poll reports quit. Idempotent.
func (m *Manager) Shutdown(timeout time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing.Swap(true) {
		return
	}
	deadline := m.clock() + int64(max(timeout, 0))
	for _, w := range m.workers {
		w.enqueue(request{kind: reqShutdown, t: deadline})
	}
}

// Closing reports whether Shutdown (or Close) was called.
func (m *Manager) Closing() bool { return m.closing.Load() }
