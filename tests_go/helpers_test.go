package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// forBackends runs f once per backend this OS offers: every test that holds
// for every backend is a matrix.
func forBackends(t *testing.T, f func(t *testing.T, backend string)) {
	for _, b := range engine.Backends() {
		t.Run(b, func(t *testing.T) { f(t, b) })
	}
}

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

// waitBound bounds the waits for what must happen soon (an accept, a
// close): generous, as a loaded machine under the race detector is slow,
// and never reached when the engine works.
const waitBound = 15 * time.Second

var leakChecked sync.Map // *testing.T -> true: one check per test, from its first manager

// checkLeaks records descriptors and goroutines now and, at cleanup, fails
// the test if they did not come back (after a short settle). A test with
// several managers is checked from before the first: cleanups run last
// first, so a later baseline would count an earlier manager still open.
func checkLeaks(t *testing.T) {
	t.Helper()
	if _, seen := leakChecked.LoadOrStore(t, true); seen {
		return
	}
	fds, gs := openFDs(t), runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for {
			nf, ng := openFDs(t), runtime.NumGoroutine()
			if nf <= fds && ng <= gs {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("leak: fds %d -> %d (%s), goroutines %d -> %d\n%s", fds, nf, fdTargets(), gs, ng, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// serve starts a manager with h on a loopback listener and closes it (and
// checks it leaked nothing and saw no stray completion) when the test ends.
func serve(t *testing.T, h engine.Handler, backend string, opts ...engine.Option) (*engine.Manager, string) {
	t.Helper()
	m := newManager(t, h, backend, opts...)
	l := listenAndStart(t, m)
	t.Cleanup(func() { closeManager(t, m) })
	return m, l.Addr().String()
}

// serveOne serves r as serve does and connects one peer: it returns the
// manager, the peer's end and the server's end of the connection.
func serveOne(t *testing.T, r *recorder, backend string, opts ...engine.Option) (*engine.Manager, net.Conn, *engine.Conn) {
	t.Helper()
	m, addr := serve(t, r, backend, opts...)
	cli := dial(t, addr)
	return m, cli, r.nextConn(t)
}

// newManager makes a manager on backend, checking when the test ends that
// nothing leaked; the caller closes it.
func newManager(t *testing.T, h engine.Handler, backend string, opts ...engine.Option) *engine.Manager {
	t.Helper()
	checkLeaks(t)
	m, err := engine.New(h, append([]engine.Option{engine.WithBackend(backend)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startManager makes a manager on backend and starts its workers, for a
// test that connects out; it is closed (and checked) when the test ends.
func startManager(t *testing.T, h engine.Handler, backend string, opts ...engine.Option) *engine.Manager {
	t.Helper()
	m := newManager(t, h, backend, opts...)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeManager(t, m) })
	return m
}

// listenAndStart opens a loopback listener on m and starts its workers.
func listenAndStart(t *testing.T, m *engine.Manager, opts ...engine.ListenOption) *engine.Listener {
	t.Helper()
	l := listen(t, m, opts...)
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	return l
}

// listen opens a loopback listener on m.
func listen(t *testing.T, m *engine.Manager, opts ...engine.ListenOption) *engine.Listener {
	t.Helper()
	l, err := m.Listen(loopback, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func closeManager(t *testing.T, m *engine.Manager) {
	t.Helper()
	if err := m.Close(5 * time.Second); err != nil {
		t.Errorf("close: %v", err)
	}
	s := m.Stats()
	if s.Stray != 0 {
		t.Errorf("%d stray completions", s.Stray)
	}
	if s.Connections != 0 || s.PendingSendBytes != 0 || s.PausedReading != 0 || s.Endpoints != 0 {
		t.Errorf("after close: %+v", s)
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// A bound on a test that would hang, past every wait the tests bound
	// by waitBound (a 16 MiB transfer under the race detector on a
	// starved machine takes more than 10 s).
	c.SetDeadline(time.Now().Add(2 * waitBound))
	t.Cleanup(func() { c.Close() })
	return c
}

// localPort is the port c was dialed from: its Peer().Port() on the
// server's side, by which handlers keep what they note of it.
func localPort(c net.Conn) uint16 { return uint16(c.LocalAddr().(*net.TCPAddr).Port) }

// flood writes to c until it fails, counting what the kernel took.
func flood(c net.Conn, n *atomic.Int64) {
	buf := make([]byte, 64<<10)
	for {
		k, err := c.Write(buf)
		n.Add(int64(k))
		if err != nil {
			return
		}
	}
}

// resetClose closes c with a reset (SO_LINGER 0).
func resetClose(t *testing.T, c net.Conn) {
	t.Helper()
	if err := c.(*net.TCPConn).SetLinger(0); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// recorder is a handler that records what happened to every connection.
type recorder struct {
	mu       sync.Mutex
	opened   map[uint64]int
	closed   map[uint64]int
	closeErr map[uint64]error
	outbound map[uint64]bool
	sent     map[uint64]int
	got      map[uint64]*bytes.Buffer
	nrecv    map[uint64]int
	discard  bool // count received bytes without keeping them (for floods)
	unlisted bool // OnOpen hands no connection to nextConn (for more than conns holds)
	order    map[uint64][]engine.EventKind
	inCall   map[uint64]bool
	overlap  int
	conns    chan *engine.Conn
	closes   chan uint64
	drains   chan uint64
	onRecv   func(c *engine.Conn, data []byte)
	onOpen   func(c *engine.Conn)
	onDrain  func(c *engine.Conn)
}

// newEchoRecorder is a recorder that sends every byte back.
func newEchoRecorder() *recorder {
	r := newRecorder()
	r.onRecv = func(c *engine.Conn, data []byte) { c.Send(data) }
	return r
}

func newRecorder() *recorder {
	return &recorder{
		opened:   map[uint64]int{},
		closed:   map[uint64]int{},
		closeErr: map[uint64]error{},
		outbound: map[uint64]bool{},
		sent:     map[uint64]int{},
		got:      map[uint64]*bytes.Buffer{},
		nrecv:    map[uint64]int{},
		order:    map[uint64][]engine.EventKind{},
		inCall:   map[uint64]bool{},
		conns:    make(chan *engine.Conn, 4096),
		closes:   make(chan uint64, 4096),
		drains:   make(chan uint64, 4096),
	}
}

// enter/leave record callback order and catch two callbacks of one
// connection running at once.
func (r *recorder) enter(c *engine.Conn, k engine.EventKind) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inCall[c.ID()] {
		r.overlap++
	}
	r.inCall[c.ID()] = true
	r.order[c.ID()] = append(r.order[c.ID()], k)
}

func (r *recorder) leave(c *engine.Conn) {
	r.mu.Lock()
	r.inCall[c.ID()] = false
	r.mu.Unlock()
}

func (r *recorder) OnOpen(c *engine.Conn) {
	r.enter(c, engine.EventAccept)
	defer r.leave(c)
	r.mu.Lock()
	r.opened[c.ID()]++
	r.got[c.ID()] = new(bytes.Buffer)
	r.mu.Unlock()
	if r.onOpen != nil {
		r.onOpen(c)
	}
	if !r.unlisted {
		r.conns <- c
	}
}

func (r *recorder) OnRecv(c *engine.Conn, data []byte) {
	r.enter(c, engine.EventRecv)
	defer r.leave(c)
	r.mu.Lock()
	// A kept flood is copied each time its buffer grows: under the race
	// detector on a loaded machine one such copy held the handler for
	// seconds, and with it every request queued to the worker.
	if !r.discard {
		r.got[c.ID()].Write(data)
	}
	r.nrecv[c.ID()] += len(data)
	r.mu.Unlock()
	if r.onRecv != nil {
		r.onRecv(c, data)
	}
}

func (r *recorder) OnSend(c *engine.Conn, n int) {
	r.enter(c, engine.EventSend)
	defer r.leave(c)
	r.mu.Lock()
	r.sent[c.ID()] += n
	r.mu.Unlock()
}

func (r *recorder) OnDrain(c *engine.Conn) {
	r.enter(c, engine.EventDrain)
	defer r.leave(c)
	if r.onDrain != nil {
		r.onDrain(c)
	}
	r.drains <- c.ID()
}

func (r *recorder) OnClose(c *engine.Conn, err error) {
	r.enter(c, engine.EventClose)
	defer r.leave(c)
	r.mu.Lock()
	r.closed[c.ID()]++
	r.closeErr[c.ID()] = err
	r.outbound[c.ID()] = c.Outbound()
	r.mu.Unlock()
	// A wake-up for waitClosed, which reads the maps: when the channel is
	// full (more closes than it holds, none waited for), a waiter finds a
	// wake-up there anyway, and the handler must not block.
	select {
	case r.closes <- c.ID():
	default:
	}
}

func (r *recorder) closeErrOf(id uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeErr[id]
}

func (r *recorder) received(id uint64) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.got[id].Bytes())
}

// closedCount is how many OnClose calls have run.
func (r *recorder) closedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range r.closed {
		n += k
	}
	return n
}

// counts is how often connection id was opened and closed.
func (r *recorder) counts(id uint64) (opened, closed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opened[id], r.closed[id]
}

func (r *recorder) receivedLen(id uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.nrecv[id]
}

func (r *recorder) sentTo(id uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent[id]
}

// nextConn waits for the next opened connection.
func (r *recorder) nextConn(t *testing.T) *engine.Conn {
	t.Helper()
	select {
	case c := <-r.conns:
		return c
	case <-time.After(waitBound):
		t.Fatal("no connection opened")
	}
	return nil
}

// waitClosed waits for connection id's OnClose.
func (r *recorder) waitClosed(t *testing.T, id uint64) error {
	t.Helper()
	deadline := time.After(waitBound)
	for {
		r.mu.Lock()
		n, err := r.closed[id], r.closeErr[id]
		r.mu.Unlock()
		if n > 0 {
			return err
		}
		select {
		case <-r.closes:
		case <-deadline:
			t.Fatalf("connection %d never closed", id)
		}
	}
}

// checkExactlyOnce fails unless every opened connection was closed exactly
// once (an outbound one that never connected: closed once, never opened),
// and no two callbacks of one connection ever ran at once.
func (r *recorder) checkExactlyOnce(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, n := range r.opened {
		if n != 1 || r.closed[id] != 1 {
			t.Errorf("connection %d: opened %d, closed %d times", id, n, r.closed[id])
		}
	}
	for id, n := range r.closed {
		if r.opened[id] == 0 && (!r.outbound[id] || n != 1) {
			t.Errorf("connection %d closed %d times, never opened", id, n)
		}
	}
	if r.overlap != 0 {
		t.Errorf("%d callbacks overlapped another of the same connection", r.overlap)
	}
}

// echoHandler sends every byte back.
type echoHandler struct{ engine.NopHandler }

func (echoHandler) OnRecv(c *engine.Conn, data []byte) { c.Send(data) }

// roundTrip writes msg on c and reads it back; safe from any goroutine.
func roundTrip(c net.Conn, msg []byte) error {
	errc := make(chan error, 1)
	go func() { _, err := c.Write(msg); errc <- err }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if err := <-errc; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo of %d bytes differs", len(msg))
	}
	return nil
}

// eventually polls cond for up to waitBound.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func isTimeout(err error) bool { return errors.Is(err, engine.ErrTimeout) }

func describe(err error) string { return fmt.Sprintf("%T %v", err, err) }

func dialErr(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }

// roundTripThrough has srv send a line and checks c receives it.
func roundTripThrough(srv *engine.Conn, c net.Conn) error {
	if err := srv.Send([]byte("hello")); err != nil {
		return err
	}
	b := make([]byte, 5)
	_, err := io.ReadFull(c, b)
	return err
}

// fullListener listens with a backlog of 0 and never accepts, after
// filling the queue: a further connect hangs (in SYN_SENT on Linux). It
// closes when the test ends.
func fullListener(t *testing.T) netip.AddrPort {
	t.Helper()
	addr, closeListener := unacceptingListener(t)
	var fillers []net.Conn
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", addr.String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		fillers = append(fillers, c)
	}
	t.Cleanup(func() {
		for _, c := range fillers {
			c.Close()
		}
		closeListener()
	})
	return addr
}
