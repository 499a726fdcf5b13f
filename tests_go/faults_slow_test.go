package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// stallBound is the longest round trip a served client may see while
// other connections misbehave, on the 2-core CI machine: the clients share
// the process, and the race detector slows everything several times
// (Wine: see slowdown).
var stallBound = map[bool]time.Duration{false: 250 * time.Millisecond, true: time.Second}[raceEnabled] * slowdown

// minRoundTrips is how many round trips the served client must at least
// have made (one a millisecond, for seconds), to show it ran all along:
// fewer under Wine, where each one is slower.
var minRoundTrips = 50 / int(slowdown)

// countingEcho echoes and counts receive events and closes.
type countingEcho struct {
	engine.NopHandler
	opened   atomic.Int64
	recvs    atomic.Int64
	mu       sync.Mutex
	openIDs  map[uint64]bool
	closes   map[uint64]int
	closeErr map[uint64]error
}

func newCountingEcho() *countingEcho {
	return &countingEcho{openIDs: map[uint64]bool{}, closes: map[uint64]int{}, closeErr: map[uint64]error{}}
}

func (h *countingEcho) OnOpen(c *engine.Conn) {
	h.opened.Add(1)
	h.mu.Lock()
	h.openIDs[c.ID()] = true
	h.mu.Unlock()
}

// neverOpened lists connections closed without being opened (outbound
// ones closed while connecting).
func (h *countingEcho) neverOpened() []uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []uint64
	for id := range h.closes {
		if !h.openIDs[id] {
			out = append(out, id)
		}
	}
	return out
}

func (h *countingEcho) OnRecv(c *engine.Conn, data []byte) {
	h.recvs.Add(1)
	c.Send(data)
}

func (h *countingEcho) OnClose(c *engine.Conn, err error) {
	h.mu.Lock()
	h.closes[c.ID()]++
	h.closeErr[c.ID()] = err
	h.mu.Unlock()
}

func (h *countingEcho) closed() (n int, errs []error, twice int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, k := range h.closes {
		if k != 1 {
			twice++
		}
		errs = append(errs, h.closeErr[id])
	}
	return len(h.closes), errs, twice
}

// wantClosed fails t unless n connections closed, each once, each with an
// error that is want (nil: closed cleanly).
func (h *countingEcho) wantClosed(t *testing.T, n int, want error) {
	t.Helper()
	closed, errs, twice := h.closed()
	if closed != n || twice != 0 {
		t.Errorf("closed %d of %d (%d twice)", closed, n, twice)
	}
	for _, err := range errs {
		if !errors.Is(err, want) {
			t.Errorf("closed with %s, want %v", describe(err), want)
		}
	}
}

// TestFaultOneByteAtATime: peers that send one byte per segment, a
// millisecond apart, under accept and idle timeouts: every byte is
// echoed in order and no trickling peer is taken for a silent one.
func TestFaultOneByteAtATime(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "one_byte_at_a_time", backend)
		conns, each := scale(f, "connections", 20, 100), scale(f, "bytes each", 300, 3000)
		h := newCountingEcho()
		m, addr := serve(t, h, backend, engine.WithWorkers(2),
			engine.WithAcceptTimeout(time.Second), engine.WithIdleTimeout(time.Second))
		runClients(t, conns, func(i int) error { return trickle(addr, uint64(i), each) })
		settle(t, "every connection closed", func() bool { n, _, _ := h.closed(); return n == conns })
		h.wantClosed(t, conns, nil)
		if n := m.Stats().TimedOut; n != 0 {
			t.Errorf("%d trickling connections timed out", n)
		}
		f.sized("%d connections x %d bytes, one byte per write, 1 ms apart", conns, each)
		f.note("%d receive events for %d bytes", h.recvs.Load(), conns*each)
		if h.recvs.Load() < int64(conns*each/4)/int64(slowdown) {
			t.Errorf("only %d receive events for %d bytes: the bytes were not trickled", h.recvs.Load(), conns*each)
		}
	})
}

func trickle(addr string, seed uint64, n int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Duration(n)*5*time.Millisecond + 10*time.Second))
	p, _ := payload(seed, n)
	got := make(chan error, 1)
	go func() {
		back := make([]byte, n)
		_, err := io.ReadFull(c, back)
		if err == nil && !bytes.Equal(back, p) {
			err = errors.New("echo differs")
		}
		got <- err
	}()
	for i := range p {
		if _, err := c.Write(p[i : i+1]); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return <-got
}

// TestFaultSlowloris: waves of connected-but-silent peers against
// accept_timeout, while an echo client is served without stalls. Every
// silent peer is reset after the timeout (not before), counted timed_out.
// A peer closed early is reported with what it saw and the server's view
// of its connection (when the engine opened it, relative to the peer's
// start before its dial, and how it closed).
func TestFaultSlowloris(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "slowloris", backend)
		silent, waves := 500, scale(f, "waves of 500", 1, 8)
		timeout := 300 * time.Millisecond * slowdown
		h := newSlowlorisServer()
		m, addr := serve(t, h, backend, engine.WithWorkers(2), engine.WithAcceptTimeout(timeout))
		// One timer heap per worker: a wave of silent connections, dialed
		// from this goroutine, adds no goroutine to the process.
		g0 := runtime.NumGoroutine()
		var held []net.Conn
		for range silent {
			start := time.Now()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				if resetInDial(err, time.Since(start), timeout) {
					continue // timed out and counted all the same
				}
				t.Fatalf("dial after %s: %v", ms(time.Since(start)), err)
			}
			held = append(held, c)
		}
		settle(t, "the first wave accepted", func() bool { return m.Stats().Accepted == uint64(silent) })
		if g := runtime.NumGoroutine(); g > g0 {
			t.Errorf("%d silent connections with deadlines: goroutines %d -> %d", silent, g0, g)
		}
		settle(t, "the first wave timed out", func() bool { return m.Stats().TimedOut == uint64(silent) })
		for _, c := range held {
			c.Close()
		}
		stopControl := startControlClient(t, addr)
		var closes timeoutCloses
		var margin openMargin
		for range waves {
			var wg sync.WaitGroup
			for range silent {
				wg.Add(1)
				go func() {
					defer wg.Done()
					start := time.Now() // before the server can accept: took is never short
					c, err := net.Dial("tcp", addr)
					if err != nil {
						if took := time.Since(start); resetInDial(err, took, timeout) {
							closes.record(took, timeout)
						} else {
							t.Errorf("dial after %s: %v", ms(took), err)
						}
						return
					}
					defer c.Close()
					c.SetReadDeadline(start.Add(timeout + 5*time.Second))
					_, err = c.Read(make([]byte, 1))
					took := time.Since(start)
					var ne net.Error
					switch {
					case errors.As(err, &ne) && ne.Timeout():
						t.Error("a silent peer was never closed")
					case !errors.Is(err, io.EOF) && !errors.Is(err, errReset):
						t.Errorf("silent peer: %v", err)
					}
					sv, known := h.view(localPort(c))
					if known {
						margin.add(sv.opened.Sub(start))
					}
					if took < timeout {
						closes.explain(fmt.Sprintf("took %s, %v; %s -> %s; server: %s",
							ms(took), err, c.LocalAddr(), c.RemoteAddr(), sv.describe(known, start)))
					}
					closes.record(took, timeout)
				}()
			}
			wg.Wait()
		}
		want := uint64(silent * (waves + 1))
		settle(t, "every silent peer counted", func() bool { return m.Stats().TimedOut == want })
		n, worst, mean := stopControl().get()
		if closes.early.Load() != 0 || closes.late.Load() != 0 {
			t.Errorf("%d silent peers closed before the timeout, %d over a second late (accept_timeout %s; "+
				"the engine opened a connection at worst %s after its peer's start)%s",
				closes.early.Load(), closes.late.Load(), timeout, ms(margin.least()), closes.explained())
		}
		if least := margin.least(); least < 0 {
			// Early or not (the reset may have come late enough to hide
			// it): accept_timeout counted from before the peer dialed.
			t.Errorf("the engine opened a silent peer's connection %s before the peer started dialing", ms(-least))
		}
		if worst > stallBound {
			t.Errorf("the served client stalled: worst round trip %s", ms(worst))
		}
		if n < minRoundTrips {
			t.Errorf("the served client made only %d round trips", n)
		}
		if s := m.Stats(); s.Listeners != 1 {
			t.Errorf("listeners %d", s.Listeners)
		}
		f.sized("1 + %d waves x %d silent connections (accept_timeout %s) + 1 echo client", waves, silent, timeout)
		f.note("the first wave, dialed without a goroutine each, added none: goroutines %d before and with it open", g0)
		f.note("silent peers reset after at most %s; echo client: %d round trips, mean %s, worst %s",
			ms(time.Duration(closes.slowest.Load())), n, ms(mean), ms(worst))
		f.note("the engine opened each silent connection at least %s after its peer started dialing", ms(margin.least()))
		f.set("worst_round_trip_ms", round(float64(worst)/1e6, 1))
	})
}

// resetInDial reports a dial that failed with a reset after the timeout:
// on a loaded machine the dialing goroutine may first run again after the
// server has accepted the connection, found it silent for timeout and
// reset it. That is a silent peer reset in time, seen from the dial.
func resetInDial(err error, took, timeout time.Duration) bool {
	return errors.Is(err, errReset) && took >= timeout
}

// slowlorisServer is modal, noting by peer port when the engine opened
// each connection and how it closed: the server's side of an early close.
type slowlorisServer struct {
	*modal
	mu     sync.Mutex
	byPort map[uint16]serverView
}

type serverView struct {
	id     uint64
	opened time.Time // Conn.OpenedAt: accept_timeout counts from it
	closed time.Time // OnClose
	err    error
}

func newSlowlorisServer() *slowlorisServer {
	return &slowlorisServer{modal: newModal(), byPort: map[uint16]serverView{}}
}

func (h *slowlorisServer) OnOpen(c *engine.Conn) {
	h.modal.OnOpen(c)
	h.mu.Lock()
	h.byPort[c.Peer().Port()] = serverView{id: c.ID(), opened: c.OpenedAt()}
	h.mu.Unlock()
}

func (h *slowlorisServer) OnClose(c *engine.Conn, err error) {
	h.modal.OnClose(c, err)
	h.mu.Lock()
	if v := h.byPort[c.Peer().Port()]; v.id == c.ID() {
		v.closed, v.err = time.Now(), err
		h.byPort[c.Peer().Port()] = v
	}
	h.mu.Unlock()
}

// view is the server's last connection from a peer port.
func (h *slowlorisServer) view(port uint16) (serverView, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.byPort[port]
	return v, ok
}

// describe tells the server's view relative to the peer's start.
func (v serverView) describe(known bool, start time.Time) string {
	if !known {
		return "no connection from this port was opened"
	}
	s := fmt.Sprintf("connection %d opened at start%+.3fms", v.id, float64(v.opened.Sub(start))/1e6)
	if v.closed.IsZero() {
		return s + ", not closed yet"
	}
	return s + fmt.Sprintf(", closed at start%+.3fms with %s", float64(v.closed.Sub(start))/1e6, describe(v.err))
}

// openMargin is the least time, over many peers, from a peer's start to
// the engine's opening of its connection: never negative, or a timeout
// counted from it may close the peer early.
type openMargin struct {
	mu  sync.Mutex
	min time.Duration
	n   int
}

func (o *openMargin) add(d time.Duration) {
	o.mu.Lock()
	if o.n == 0 || d < o.min {
		o.min = d
	}
	o.n++
	o.mu.Unlock()
}

func (o *openMargin) least() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.min
}

// TestFaultIdleTimeout: peers talk once and go quiet while an echo client
// keeps talking: each quiet peer is reset with ErrIdleTimeout after the
// timeout (not before, less than a second late); the talking client is
// never closed nor stalled.
func TestFaultIdleTimeout(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "idle_timeout", backend)
		quiet := scale(f, "quiet peers", 200, 2000)
		const timeout = 300 * time.Millisecond
		h := newModal()
		m, addr := serve(t, h, backend, engine.WithWorkers(2), engine.WithIdleTimeout(timeout))
		stopControl := startControlClient(t, addr)
		var closes timeoutCloses
		runClients(t, quiet, func(int) error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(timeout + 10*time.Second))
			start := time.Now() // before the last activity: took is never short
			c.Write([]byte{'E'})
			if err := roundTrip(c, []byte("once")); err != nil {
				return err
			}
			_, err = c.Read(make([]byte, 1))
			took := time.Since(start)
			if !errors.Is(err, io.EOF) && !errors.Is(err, errReset) {
				t.Errorf("quiet peer: %v", err)
			}
			closes.record(took, timeout)
			return nil
		})
		settle(t, "every quiet peer closed", func() bool { return h.closedCount() == quiet })
		lat := stopControl()
		settle(t, "the control connection closed", func() bool { return h.closedCount() == quiet+1 })
		n, worst, mean := lat.get()
		for _, err := range h.byMode(t, 'E') {
			if err != nil && !errors.Is(err, engine.ErrIdleTimeout) {
				t.Errorf("a quiet peer closed with %s", describe(err))
			}
		}
		if s := m.Stats(); s.TimedOut != uint64(quiet) {
			t.Errorf("timed_out %d, want %d", s.TimedOut, quiet)
		}
		if closes.early.Load() != 0 || closes.late.Load() != 0 {
			t.Errorf("%d quiet peers closed before the timeout, %d over a second late", closes.early.Load(), closes.late.Load())
		}
		if worst > stallBound || n < minRoundTrips {
			t.Errorf("the talking client: %d round trips, worst %s", n, ms(worst))
		}
		f.sized("%d peers quiet after one round trip (idle_timeout %s) + 1 echo client", quiet, timeout)
		f.note("quiet peers reset after at most %s; echo client: %d round trips, mean %s, worst %s",
			ms(time.Duration(closes.slowest.Load())), n, ms(mean), ms(worst))
	})
}

// timeoutCloses tallies when peers were closed by a timeout, from many
// goroutines: before it (early), over a second after it (late), and the
// slowest; explain keeps a line on the first early ones.
type timeoutCloses struct {
	early, late, slowest atomic.Int64
	mu                   sync.Mutex
	why                  []string
}

func (c *timeoutCloses) record(took, timeout time.Duration) {
	if took < timeout {
		c.early.Add(1)
	}
	if took > timeout+time.Second*slowdown {
		c.late.Add(1)
	}
	for {
		old := c.slowest.Load()
		if int64(took) <= old || c.slowest.CompareAndSwap(old, int64(took)) {
			return
		}
	}
}

func (c *timeoutCloses) explain(line string) {
	c.mu.Lock()
	if len(c.why) < 20 {
		c.why = append(c.why, line)
	}
	c.mu.Unlock()
}

func (c *timeoutCloses) explained() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.why) == 0 {
		return ""
	}
	return ":\n\t" + strings.Join(c.why, "\n\t")
}
