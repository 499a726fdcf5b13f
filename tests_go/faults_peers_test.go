package engine_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// modal serves each connection by its first byte: 'E' echoes, 'D' streams
// bytes to the peer until the connection ends (refilling on drain), 'U'
// takes and drops what the peer uploads, 'Q' closes at once.
type modal struct {
	engine.NopHandler
	mu       sync.Mutex
	mode     map[uint64]byte
	closes   map[uint64]int
	closeErr map[uint64]error
	opened   atomic.Int64
	streamed atomic.Int64
}

func newModal() *modal {
	return &modal{mode: map[uint64]byte{}, closes: map[uint64]int{}, closeErr: map[uint64]error{}}
}

func (h *modal) OnOpen(c *engine.Conn) { h.opened.Add(1) }

func (h *modal) OnRecv(c *engine.Conn, data []byte) {
	h.mu.Lock()
	m, ok := h.mode[c.ID()]
	if !ok {
		m = data[0]
		h.mode[c.ID()] = m
		data = data[1:]
	}
	h.mu.Unlock()
	switch m {
	case 'E':
		c.Send(data)
	case 'D':
		if !ok {
			h.pump(c)
		}
	case 'Q':
		c.Close()
	}
}

// pump queues stream bytes until the send buffer is full; OnDrain goes on.
func (h *modal) pump(c *engine.Conn) {
	for {
		off := int(h.streamed.Load()) % (len(payloadBlock) - 64<<10)
		if c.Send(payloadBlock[off:off+64<<10]) != nil {
			return
		}
		h.streamed.Add(64 << 10)
	}
}

func (h *modal) OnDrain(c *engine.Conn) { h.pump(c) }

func (h *modal) OnClose(c *engine.Conn, err error) {
	h.mu.Lock()
	h.closes[c.ID()]++
	h.closeErr[c.ID()] = err
	h.mu.Unlock()
}

// byMode returns the close errors of the connections of one mode, and
// fails the test for a connection closed other than exactly once.
func (h *modal) byMode(t *testing.T, mode byte) []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []error
	for id, m := range h.mode {
		if h.closes[id] != 1 {
			t.Errorf("connection %d (%c) closed %d times", id, m, h.closes[id])
		}
		if m == mode {
			out = append(out, h.closeErr[id])
		}
	}
	return out
}

func (h *modal) closedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.closes)
}

// controlClient does echo round trips until stop closes, timing each; an
// error is a fault of the scenario (another connection's trouble reached
// this one). addr is host:port, or unix:PATH.
func controlClient(t *testing.T, addr string, stop <-chan struct{}, lat *latencies) {
	t.Helper()
	c, err := dialAny(addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	if _, err := c.Write([]byte{'E'}); err != nil {
		t.Error(err)
		return
	}
	msg := []byte("control round trip")
	buf := make([]byte, len(msg))
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Millisecond):
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			t.Errorf("control client: %v", err)
			return
		}
		if _, err := io.ReadFull(c, buf); err != nil || !bytes.Equal(buf, msg) {
			t.Errorf("control client: %v", err)
			return
		}
		lat.add(time.Since(start))
	}
}

// startControlClient runs controlClient until the returned stop, which
// waits for it to end and returns the latencies of its round trips.
func startControlClient(t *testing.T, addr string) (stop func() *latencies) {
	done := make(chan struct{})
	lat := new(latencies)
	var wg sync.WaitGroup
	wg.Go(func() { controlClient(t, addr, done, lat) })
	return func() *latencies {
		close(done)
		wg.Wait()
		return lat
	}
}

// dialAny connects to host:port, or to the Unix domain socket unix:PATH.
func dialAny(addr string) (net.Conn, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return net.DialTimeout("unix", path, faultWait)
	}
	return net.DialTimeout("tcp", addr, faultWait)
}

func isErrno(err error) bool {
	var en syscall.Errno
	return errors.As(err, &en)
}

// TestFaultPeerResetMidTransfer: peers reset (RST) while the server streams
// to them and while they upload to it. Each of those connections ends once
// with an OS error; an echo client on the same listener is never disturbed;
// the listener lives on.
func TestFaultPeerResetMidTransfer(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "reset_mid_transfer", backend)
		each := scale(f, "resets each way", 50, 1000)
		h := newModal()
		m, addr := serve(t, h, backend, engine.WithWorkers(2), engine.WithSendBufferLimit(1<<20))
		stopControl := startControlClient(t, addr)
		var up, down atomic.Int64
		runClients(t, 2*each, func(i int) error {
			k := 64<<10 + rand.New(rand.NewPCG(uint64(i), 7)).IntN(4<<20)
			if i%2 == 0 {
				return resetMidTransfer(addr, 'D', k, &down)
			}
			return resetMidTransfer(addr, 'U', k, &up)
		})
		// An upload can be reset before the server accepts it: with more
		// connections at once than the listen backlog, the kernel lets a
		// client connect and send while the server's side still waits in
		// the SYN queue, and the reset drops it unseen. Every connection
		// the server did open must end, once, with an error.
		settle(t, "every opened reset connection closed", func() bool {
			n := h.opened.Load()
			if m.Stats().Connections != 1 || int64(h.closedCount()) != n-1 {
				return false
			}
			time.Sleep(100 * time.Millisecond) // and none is left to accept
			return h.opened.Load() == n && m.Stats().Connections == 1
		})
		lat := stopControl()
		settle(t, "the control connection closed", func() bool { return int64(h.closedCount()) == h.opened.Load() })
		unseen := 2*each + 1 - int(h.opened.Load())
		for _, mode := range []byte{'D', 'U'} {
			errs := h.byMode(t, mode)
			want := each // a download reads from the server: it was accepted
			if mode == 'U' {
				want -= unseen
			}
			if len(errs) != want {
				t.Errorf("%c: %d connections opened, want %d", mode, len(errs), want)
			}
			for _, err := range errs {
				if !isErrno(err) && !(err == nil && resetsLost) {
					t.Errorf("%c: reset connection closed with %s, want an OS error", mode, describe(err))
				}
			}
		}
		if s := m.Stats(); s.Listeners != 1 || s.Stray != 0 {
			t.Errorf("after the resets: %+v", s)
		}
		after := dial(t, addr)
		after.Write([]byte{'E'})
		if err := roundTrip(after, []byte("the listener lives on")); err != nil {
			t.Fatal(err)
		}
		n, worst, mean := lat.get()
		f.sized("%d resets while downloading (%s read first), %d while uploading (%s written first)",
			each, mib(down.Load()), each, mib(up.Load()))
		f.note("control client: %d round trips, mean %s, worst %s, 0 errors; %d uploads reset before the server "+
			"accepted them (listen backlog overflow), every other connection closed once with an OS error",
			n, ms(mean), ms(worst), unseen)
		f.set("control_round_trips", n)
		if n == 0 {
			t.Error("the control client made no round trip")
		}
	})
}

// resetMidTransfer reads k bytes of the server's stream (mode 'D') or
// streams k bytes to it (mode 'U'), then resets, the stream still going.
func resetMidTransfer(addr string, mode byte, k int, total *atomic.Int64) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(faultWait))
	if _, err := c.Write([]byte{mode}); err != nil {
		return err
	}
	switch mode {
	case 'D':
		n, err := io.CopyN(io.Discard, c, int64(k))
		total.Add(n)
		if err != nil {
			return err
		}
	case 'U':
		for sent := 0; sent < k; {
			n, err := c.Write(payloadBlock[:min(k-sent, 256<<10)])
			sent += n
			total.Add(int64(n))
			if err != nil {
				return err
			}
		}
	}
	return c.(*net.TCPConn).SetLinger(0)
}
