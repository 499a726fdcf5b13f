package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// Clients of ModeEcho, the values of Config.Client.
const (
	// ClientNet (also ""): a goroutine per connection on Go's net package,
	// a read and a write system call per message.
	ClientNet = "net"
	// ClientEngine: every connection on one worker of pyiocp's own engine
	// (io_uring where it works, else epoll), whose rounds batch the
	// connections' sends and receives into few system calls. On a machine
	// where the client shares the cores with the server, it leaves the
	// server more of them: at hundreds of connections a goroutine per
	// connection costs the client more per message than most servers.
	ClientEngine = "engine"
)

// engineRun is one ModeEcho run on the engine. Its Handler methods run on
// the engine's single worker; the map of connections is shared with Run's
// goroutine, which adds them, under mu.
type engineRun struct {
	r     *runner
	mu    sync.Mutex
	conns map[uint64]*engineConn
	// Guarded by mu: connects not yet finished, connections open, and
	// the dials that failed.
	connecting, open int
	dialErrs         uint64
	firstDial        error
	connected        chan struct{} // closed when connecting reaches 0
	closed           chan struct{} // closed when every opened connection has closed, during the run
	running, ended   bool          // traffic has started; closed is closed
}

// engineConn is one connection's echo state, touched by the worker only
// once Run's goroutine has sent its first messages.
type engineConn struct {
	*worker
	c      *engine.Conn
	opened bool
	p      payload
	sbuf   []byte
	rbuf   []byte
	fill   int             // bytes of the next echo in rbuf
	next   uint64          // sequence number of the next message to send
	seq    uint64          // sequence number of the next echo
	sent   []time.Duration // send time of each in-flight message, since r.start
}

func runEngineEcho(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Mode: ModeEcho, Addr: cfg.Addr, Conns: cfg.Conns, Size: cfg.Size, Depth: cfg.Depth}
	connect, err := engineConnect(cfg)
	if err != nil {
		res.Errors = uint64(cfg.Conns)
		res.FirstError = err.Error()
		return res, fmt.Errorf("%w to %s: %w", ErrNoConnection, cfg.Addr, err)
	}
	e := &engineRun{
		r:         &runner{cfg: cfg, pattern: newPattern(cfg.Size)},
		conns:     make(map[uint64]*engineConn, cfg.Conns),
		connected: make(chan struct{}),
		closed:    make(chan struct{}),
	}
	m, err := engine.New(e, engine.WithWorkers(1), engine.WithEvents(0),
		engine.WithIdleTimeout(cfg.ReplyTimeout+cfg.ReplyTimeout/2),
		engine.WithSendBufferLimit(max(2*cfg.Size*cfg.Depth, 1<<20)))
	if err != nil {
		return res, err
	}
	if err := m.Start(); err != nil {
		return res, err
	}
	defer m.Close(time.Second)

	e.connectAll(func() (*engine.Conn, error) { return connect(m) }, cfg)
	select {
	case <-e.connected:
	case <-ctx.Done():
	}
	e.mu.Lock()
	res.Errors, res.Connected = e.dialErrs, e.open
	if e.firstDial != nil {
		res.FirstError = e.firstDial.Error()
	}
	if e.open == 0 {
		e.mu.Unlock()
		return res, fmt.Errorf("%w to %s: %w", ErrNoConnection, cfg.Addr, e.firstDial)
	}
	r := e.r
	started := make([]*engineConn, 0, e.open)
	for _, ec := range e.conns {
		if ec.opened {
			started = append(started, ec)
			r.workers = append(r.workers, ec.worker)
		}
	}
	e.running = true
	r.start = time.Now()
	r.measureStart = r.start.Add(cfg.Warmup)
	r.end = r.measureStart.Add(cfg.Duration)
	e.mu.Unlock()

	var progress sync.WaitGroup
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		progress.Go(func() { r.report(cfg.Progress, progressDone) })
	}
	for _, ec := range started {
		ec.start(r)
	}
	timer := time.NewTimer(time.Until(r.end))
	select {
	case <-timer.C:
	case <-ctx.Done():
	case <-e.closed:
	}
	timer.Stop()
	stopAt := time.Now()
	r.stopped.Store(true)
	m.Close(time.Second)
	close(progressDone)
	progress.Wait()
	r.collect(&res, stopAt, e.firstDial)
	return res, nil
}

// connectAll starts every connect. mu is held throughout, so that OnOpen
// and OnClose find each connection in the map.
func (e *engineRun) connectAll(connect func() (*engine.Conn, error), cfg Config) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := 0; i < cfg.Conns; i++ {
		c, err := connect()
		if err != nil {
			e.dialFailed(i, err)
			continue
		}
		e.connecting++
		e.conns[c.ID()] = &engineConn{
			worker: &worker{idx: i},
			c:      c,
			p:      newPayload(i, e.r.pattern).framed(cfg.Framing),
			sbuf:   make([]byte, cfg.Size*cfg.Depth),
			rbuf:   make([]byte, cfg.Size),
			sent:   make([]time.Duration, cfg.Depth),
		}
	}
	if e.connecting == 0 {
		close(e.connected)
	}
}

func (e *engineRun) dialFailed(i int, err error) {
	e.dialErrs++
	if e.firstDial == nil {
		e.firstDial = fmt.Errorf("conn %d: %w", i, err)
	}
}

func (e *engineRun) lookup(c *engine.Conn) *engineConn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.conns[c.ID()]
}

// OnOpen counts a connect done.
func (e *engineRun) OnOpen(c *engine.Conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.conns[c.ID()].opened = true
	e.open++
	e.connectDone()
}

func (e *engineRun) connectDone() {
	e.connecting--
	if e.connecting == 0 && !e.running {
		close(e.connected)
	}
}

// OnClose counts a failed connect, or a connection that ended: during the
// run an error (the server closed it, or no echo within ReplyTimeout).
func (e *engineRun) OnClose(c *engine.Conn, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ec := e.conns[c.ID()]
	if ec == nil {
		return
	}
	if !ec.opened {
		e.dialFailed(ec.idx, err)
		e.connectDone()
		return
	}
	if err == nil {
		err = errors.New("closed by the server")
	} else if errors.Is(err, engine.ErrIdleTimeout) {
		err = fmt.Errorf("no echo within %v: %w", e.r.cfg.ReplyTimeout, err)
	}
	ec.failed(e.r, err)
	e.open--
	// A connect that a cancelled Run did not wait for can still open (and
	// close) after the run started: closed is closed once.
	if e.open == 0 && e.running && !e.ended {
		e.ended = true
		close(e.closed)
	}
}

// OnSend is not called (no send events are asked for).
func (e *engineRun) OnSend(*engine.Conn, int) {}

// OnRecv checks every whole echo and sends the next message for each.
func (e *engineRun) OnRecv(c *engine.Conn, data []byte) {
	if ec := e.lookup(c); ec != nil {
		ec.recv(e.r, data)
	}
}

// start sends the first Depth messages in one Send: nothing of this
// connection is touched by this goroutine after it.
func (ec *engineConn) start(r *runner) {
	size := r.cfg.Size
	now := time.Since(r.start)
	for ; ec.next < uint64(r.cfg.Depth); ec.next++ {
		ec.p.build(ec.sbuf[int(ec.next)*size:int(ec.next+1)*size], ec.next)
		ec.sent[ec.next] = now
	}
	if err := ec.c.Send(ec.sbuf); err != nil {
		ec.failed(r, err)
	}
}

func (ec *engineConn) recv(r *runner, data []byte) {
	size, depth := r.cfg.Size, uint64(r.cfg.Depth)
	for len(data) > 0 {
		k := copy(ec.rbuf[ec.fill:], data)
		ec.fill += k
		data = data[k:]
		if ec.fill < size {
			return
		}
		ec.fill = 0
		now := time.Now()
		ec.echoed(r, ec.p, ec.rbuf, ec.seq, ec.sent[ec.seq%depth], now)
		ec.seq++
		if !now.Before(r.end) || r.stopped.Load() {
			continue // the run is over: read what is in flight, send no more
		}
		msg := ec.sbuf[:size]
		ec.p.build(msg, ec.next)
		ec.sent[ec.next%depth] = now.Sub(r.start)
		ec.next++
		if err := ec.c.Send(msg); err != nil {
			ec.failed(r, err)
		}
	}
}

// engineConnect is how the engine client connects to cfg's target: a TCP
// address resolved once, or a Unix domain socket (the engine spells an
// abstract name with a leading NUL, Go's net with '@').
func engineConnect(cfg Config) (func(*engine.Manager) (*engine.Conn, error), error) {
	if network, path := cfg.target(); network == "unix" {
		if rest, ok := strings.CutPrefix(path, "@"); ok {
			path = "\x00" + rest
		}
		return func(m *engine.Manager) (*engine.Conn, error) { return m.ConnectUnix(path, cfg.ConnectTimeout) }, nil
	}
	addr, err := net.ResolveTCPAddr("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	return func(m *engine.Manager) (*engine.Conn, error) { return m.Connect(addr.AddrPort(), cfg.ConnectTimeout) }, nil
}
