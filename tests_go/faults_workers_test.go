package engine_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// blocker echoes; a message "block" makes its callback sleep (a handler
// doing blocking work on the worker). It notes the OS thread, that is the
// worker, that runs each peer's callbacks.
type blocker struct {
	engine.NopHandler
	hold    time.Duration
	blocked chan struct{}
	mu      sync.Mutex
	tid     map[uint16]int
}

func (h *blocker) OnRecv(c *engine.Conn, data []byte) {
	h.mu.Lock()
	h.tid[c.Peer().Port()] = threadID()
	h.mu.Unlock()
	if string(data) == "block" {
		close(h.blocked)
		time.Sleep(h.hold)
	}
	c.Send(data)
}

func (h *blocker) worker(c net.Conn) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tid[localPort(c)]
}

// TestFaultBlockingCallback: one callback sleeps for seconds; the peers of
// the other workers are served all along without a stall; the peer that
// shares the blocked worker waits (a blocking handler stalls only its own
// worker), and everything is answered once the callback returns.
func TestFaultBlockingCallback(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "blocking_callback", backend)
		const workers, peers = 4, 8
		hold := time.Duration(scale(f, "seconds blocked", 2, 5)) * time.Second
		h := &blocker{hold: hold, blocked: make(chan struct{}), tid: map[uint16]int{}}
		_, addr := serve(t, h, backend, engine.WithWorkers(workers))
		cs := make([]net.Conn, peers)
		for i := range cs {
			cs[i] = dial(t, addr)
			if err := roundTrip(cs[i], []byte("hello")); err != nil {
				t.Fatal(err)
			}
		}
		blockedWorker := h.worker(cs[0])
		start := time.Now()
		cs[0].Write([]byte("block"))
		<-h.blocked
		var lat latencies
		var sameWorker []net.Conn
		var wg sync.WaitGroup
		for _, c := range cs[1:] {
			if h.worker(c) == blockedWorker {
				sameWorker = append(sameWorker, c)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Since(start) < h.hold-200*time.Millisecond {
					t0 := time.Now()
					if err := roundTrip(c, []byte("served")); err != nil {
						t.Error(err)
						return
					}
					lat.add(time.Since(t0))
					time.Sleep(2 * time.Millisecond)
				}
			}()
		}
		if len(sameWorker) == 0 {
			t.Fatalf("no peer shares the blocked worker: %v", h.tid)
		}
		// A peer of the blocked worker is answered only after the callback.
		t0 := time.Now()
		if err := roundTrip(sameWorker[0], []byte("waits")); err != nil {
			t.Fatal(err)
		}
		waited := time.Since(t0)
		wg.Wait()
		got := make([]byte, 5)
		if _, err := io.ReadFull(cs[0], got); err != nil || string(got) != "block" {
			t.Fatalf("the blocked peer's answer: %q %v", got, err)
		}
		if blockedFor := time.Since(start); blockedFor < h.hold {
			t.Errorf("answered after %s, before the callback's %s", blockedFor, h.hold)
		}
		n, worst, mean := lat.get()
		if worst > stallBound || n < 100 {
			t.Errorf("other workers' peers: %d round trips, worst %s", n, ms(worst))
		}
		if waited < h.hold/2 {
			t.Errorf("the peer sharing the blocked worker was answered in %s", waited)
		}
		f.sized("%d workers, %d peers; one callback sleeps %s", workers, peers, h.hold)
		f.note("other workers: %d round trips, mean %s, worst %s; the blocked worker's other peer waited %s",
			n, ms(mean), ms(worst), ms(waited))
		f.set("worst_round_trip_ms", round(float64(worst)/1e6, 1))
	})
}

// flowSender sends from many goroutines, waiting for OnDrain when the
// send buffer is full.
type flowSender struct {
	engine.NopHandler
	conns   chan *engine.Conn
	mu      sync.Mutex
	drained *sync.Cond
	drains  int
}

func newFlowSender() *flowSender {
	h := &flowSender{conns: make(chan *engine.Conn, 1)}
	h.drained = sync.NewCond(&h.mu)
	return h
}

func (h *flowSender) OnOpen(c *engine.Conn) { h.conns <- c }

func (h *flowSender) OnDrain(c *engine.Conn) {
	h.mu.Lock()
	h.drains++
	h.drained.Broadcast()
	h.mu.Unlock()
}

// send retries p after each drain until the buffer takes it.
func (h *flowSender) send(c *engine.Conn, p []byte) error {
	for {
		h.mu.Lock()
		seen := h.drains
		err := c.Send(p)
		if !errors.Is(err, engine.ErrBufferFull) {
			h.mu.Unlock()
			return err
		}
		for h.drains == seen {
			h.drained.Wait()
		}
		h.mu.Unlock()
	}
}

const frameMagic = 0xF7A3

// senderFrame is frame i of sender s: a 12-byte header (magic, sender,
// sequence, size) and a body of one repeated byte naming (s, i), so a
// frame cut by another's bytes is caught.
func senderFrame(s, i, size int) []byte {
	b := make([]byte, 12+size)
	binary.BigEndian.PutUint16(b, frameMagic)
	b[2] = byte(s)
	binary.BigEndian.PutUint32(b[4:], uint32(i))
	binary.BigEndian.PutUint32(b[8:], uint32(size))
	for k := 12; k < len(b); k++ {
		b[k] = byte(s*31 + i)
	}
	return b
}

// TestFaultEightSenders: 8 goroutines send to one connection at once,
// through a small send buffer (BufferFull, then OnDrain): every frame
// arrives whole, each sender's in order, nothing lost.
func TestFaultEightSenders(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "eight_senders", backend)
		const senders = 8
		frames := scale(f, "frames per sender", 200, 2000)
		h := newFlowSender()
		_, addr := serve(t, h, backend, engine.WithSendBufferLimit(1<<20))
		cli := dial(t, addr)
		cli.SetDeadline(time.Now().Add(faultWait))
		srv := <-h.conns
		var total atomic.Int64
		var wg sync.WaitGroup
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(s), 11))
				for i := range frames {
					p := senderFrame(s, i, 1+rng.IntN(64<<10))
					if err := h.send(srv, p); err != nil {
						t.Errorf("sender %d: %v", s, err)
						return
					}
					total.Add(int64(len(p)))
				}
			}()
		}
		next := make([]int, senders)
		var got int64
		var hdr [12]byte
		body := make([]byte, 64<<10)
		for n := 0; n < senders*frames; n++ {
			if _, err := io.ReadFull(cli, hdr[:]); err != nil {
				t.Fatalf("frame %d: %v", n, err)
			}
			s, i, size := int(hdr[2]), int(binary.BigEndian.Uint32(hdr[4:])), int(binary.BigEndian.Uint32(hdr[8:]))
			if binary.BigEndian.Uint16(hdr[:]) != frameMagic || s >= senders || size > len(body) {
				t.Fatalf("frame %d: a header cut by another frame: % x", n, hdr)
			}
			if i != next[s] {
				t.Fatalf("sender %d: frame %d after %d", s, i, next[s]-1)
			}
			b := body[:size]
			if _, err := io.ReadFull(cli, b); err != nil {
				t.Fatal(err)
			}
			if bytes.Count(b, []byte{byte(s*31 + i)}) != size {
				t.Fatalf("sender %d frame %d: bytes of another frame inside", s, i)
			}
			next[s]++
			got += int64(12 + size)
		}
		wg.Wait()
		if got != total.Load() {
			t.Errorf("received %d bytes, sent %d", got, total.Load())
		}
		h.mu.Lock()
		drains := h.drains
		h.mu.Unlock()
		f.sized("8 goroutines x %d frames of 1 B-64 KiB to one connection, %s; send_buffer_limit 1 MiB", frames, mib(got))
		f.note("%d drains; every frame whole and in order", drains)
		if drains == 0 {
			t.Error("the send buffer never filled: the scenario did not test flow control")
		}
	})
}
