package engine_test

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// filler queues bytes on every connection it opens until the send buffer
// is full, and again on every drain.
type filler struct {
	*countingEcho
	conns chan *engine.Conn
}

func (h *filler) OnOpen(c *engine.Conn) {
	h.countingEcho.OnOpen(c)
	h.fill(c)
	h.conns <- c
}

func (h *filler) OnDrain(c *engine.Conn) { h.fill(c) }

func (h *filler) fill(c *engine.Conn) {
	for c.Send(payloadBlock[:16<<10]) == nil {
	}
}

// tinyReceiver dials with a 4 KiB receive buffer and never reads.
func tinyReceiver(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = setRecvBuffer(fd, 4096)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// writesStopped reports whether m wrote nothing for 200 ms.
func writesStopped(m *engine.Manager) bool {
	before := m.Stats().BytesOut
	time.Sleep(200 * time.Millisecond)
	return m.Stats().BytesOut == before
}

// TestFaultSendBufferPeerNeverReads: peers that never read, a server that
// sends to each as much as it can: each connection holds at most
// send_buffer_limit, the process's memory stays within connections x limit,
// and closing resets them after the close timeout.
func TestFaultSendBufferPeerNeverReads(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "send_buffer_limit", backend)
		peers := scale(f, "peers", 20, 200)
		const limit = 256 << 10
		h := &filler{newCountingEcho(), make(chan *engine.Conn, peers)}
		m, addr := serve(t, h, backend, engine.WithWorkers(2), engine.WithSendBufferLimit(limit))
		var conns []*engine.Conn
		for range peers {
			tinyReceiver(t, addr)
			conns = append(conns, <-h.conns)
		}
		// The kernel's socket buffers take what they can first; once the
		// writes stop, top every send buffer up to the limit.
		settle(t, "the writes to peers that never read to stop", func() bool { return writesStopped(m) })
		for _, c := range conns {
			h.fill(c)
			if p := c.Pending(); p <= limit-16<<10 {
				t.Fatalf("pending %d after filling up to the limit %d", p, limit)
			}
		}
		runtime.GC()
		heapFull := heapInUse()
		sentFull := m.Stats().BytesOut
		time.Sleep(300 * time.Millisecond) // the peers still do not read: nothing may grow
		for _, c := range conns {
			if p := c.Pending(); p > limit {
				t.Errorf("pending %d over the limit %d", p, limit)
			}
			if err := c.Send(payloadBlock[:limit]); !errors.Is(err, engine.ErrBufferFull) {
				t.Errorf("send into a full buffer: %v", err)
			}
		}
		s := m.Stats()
		if s.PendingSendBytes > int64(peers*limit) {
			t.Errorf("pending_send_bytes %d over %d x %d", s.PendingSendBytes, peers, limit)
		}
		runtime.GC()
		grown := int64(heapInUse()) - int64(f.heap)
		if grown > int64(peers*limit)+faultHeapSlack {
			t.Errorf("heap grew %s for %d peers x %s", mib(grown), peers, mib(limit))
		}
		if d := s.BytesOut - sentFull; d > 0 {
			t.Errorf("%d bytes written to peers that do not read", d)
		}
		m.Close(200 * time.Millisecond)
		h.wantClosed(t, peers, engine.ErrCloseTimeout)
		f.sized("%d peers that never read (4 KiB receive buffers); send_buffer_limit %s", peers, mib(limit))
		f.note("pending %s in all (bound %s); heap +%s while full, %s when first full; Close resets each after 200 ms",
			mib(s.PendingSendBytes), mib(int64(peers*limit)), mib(grown), mib(int64(heapFull)))
	})
}

// hasher keeps a digest of what each connection delivered, by peer port.
type hasher struct {
	*countingEcho
	conns chan *engine.Conn
	got   uploads
}

func (h *hasher) OnOpen(c *engine.Conn) {
	h.countingEcho.OnOpen(c)
	c.Context = newConnHash()
	h.conns <- c
}

func (h *hasher) OnRecv(c *engine.Conn, data []byte) {
	h.recvs.Add(1)
	c.Context.(*connHash).add(data)
}

func (h *hasher) OnEOF(c *engine.Conn) {
	h.got.put(c, c.Context.(*connHash).upload())
	c.Close()
}

// TestFaultRecvBufferFlood: peers write as fast as they can; the server
// pauses reading (from another goroutine, mid-flood): the engine holds at
// most recv_buffer_limit per connection, reads nothing more, the peers
// stall on the closed TCP window; resumed, every byte arrives in order.
func TestFaultRecvBufferFlood(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "recv_buffer_limit", backend)
		peers := scale(f, "peers", 10, 100)
		const limit = 64 << 10
		h := &hasher{countingEcho: newCountingEcho(), conns: make(chan *engine.Conn, peers)}
		m, addr := serve(t, h, backend, engine.WithWorkers(2), engine.WithRecvBufferLimit(limit))
		type flood struct {
			c    net.Conn
			srv  *engine.Conn
			sent atomic.Int64
			sum  hash.Hash
			stop atomic.Bool
			done chan error
		}
		fl := make([]*flood, peers)
		for i := range fl {
			c := dial(t, addr)
			x := &flood{c: c, srv: <-h.conns, sum: sha256.New(), done: make(chan error, 1)}
			fl[i] = x
			go func() {
				p := payloadBlock[i*4096 : i*4096+64<<10]
				for !x.stop.Load() {
					c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
					n, err := c.Write(p)
					x.sum.Write(p[:n])
					x.sent.Add(int64(n))
					var ne net.Error
					if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
						x.done <- err
						return
					}
				}
				x.done <- nil
			}()
		}
		settle(t, "the flood under way", func() bool { return m.Stats().BytesIn > uint64(peers)*256<<10 })
		for _, x := range fl {
			x.srv.PauseReading()
		}
		stalled := func() bool {
			before := make([]int64, peers)
			for i, x := range fl {
				before[i] = x.sent.Load()
			}
			time.Sleep(200 * time.Millisecond)
			for i, x := range fl {
				if x.sent.Load() != before[i] {
					return false
				}
			}
			return true
		}
		settle(t, "every flooding peer stalled", stalled)
		in := m.Stats().BytesIn
		runtime.GC()
		grown := int64(heapInUse()) - int64(f.heap)
		time.Sleep(300 * time.Millisecond)
		s := m.Stats()
		if s.BytesIn != in {
			t.Errorf("read %d bytes while paused", s.BytesIn-in)
		}
		if s.PausedReading != peers {
			t.Errorf("paused_reading %d", s.PausedReading)
		}
		if grown > int64(peers*limit)+faultHeapSlack {
			t.Errorf("heap grew %s for %d peers x %s", mib(grown), peers, mib(limit))
		}
		var flooded int64
		for _, x := range fl {
			x.stop.Store(true)
			if err := <-x.done; err != nil {
				t.Fatal(err)
			}
			flooded += x.sent.Load()
			x.c.(*net.TCPConn).CloseWrite()
			x.srv.ResumeReading()
		}
		for _, x := range fl {
			port := localPort(x.c)
			var sum [32]byte
			x.sum.Sum(sum[:0])
			settle(t, "the whole flood delivered", func() bool {
				u, ok := h.got.get(port)
				return ok && u.n == int(x.sent.Load()) && u.sum == sum
			})
		}
		f.sized("%d peers flooding %s in all before they stalled; recv_buffer_limit %s, reading paused mid-flood", peers, mib(flooded), mib(limit))
		f.note("0 bytes read while paused; heap +%s (bound %s); every byte delivered in order after resume", mib(grown), mib(int64(peers*limit)))
	})
}

// TestFaultMaxConnectionsBurst: waves of simultaneous connects, many times
// max_connections: the ones over the cap are reset at once and counted,
// the open count never passes the cap, and service goes on.
func TestFaultMaxConnectionsBurst(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "max_connections", backend)
		const limit, wave = 50, 300
		waves := scale(f, "waves of 300", 1, 10)
		h := newModal()
		m, addr := serve(t, h, backend, engine.WithWorkers(2), engine.WithMaxConnections(limit))
		var peak atomic.Int64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Microsecond):
				}
				if n := int64(m.Stats().Connections); n > peak.Load() {
					peak.Store(n)
				}
			}
		}()
		var held, reset atomic.Int64
		for range waves {
			var wg sync.WaitGroup
			var mu sync.Mutex
			var keep []net.Conn
			for range wave {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.DialTimeout("tcp", addr, 5*time.Second)
					if err != nil {
						if errors.Is(err, errReset) {
							reset.Add(1)
							return
						}
						t.Error(err)
						return
					}
					c.SetReadDeadline(time.Now().Add(500 * time.Millisecond * slowdown))
					_, err = c.Read(make([]byte, 1))
					var ne net.Error
					switch {
					case errors.As(err, &ne) && ne.Timeout():
						held.Add(1) // accepted: the server waits for it to speak
						mu.Lock()
						keep = append(keep, c)
						mu.Unlock()
						return
					case errors.Is(err, errReset), resetsLost && errors.Is(err, io.EOF):
						reset.Add(1) // Wine reads a reset as the end of the stream, at times
					default:
						t.Errorf("a peer over the cap: %v", err)
					}
					c.Close()
				}()
			}
			wg.Wait()
			for _, c := range keep {
				c.Close()
			}
			settle(t, "the wave's connections closed", func() bool { return m.Stats().Connections == 0 })
		}
		close(stop)
		<-sampled
		s := m.Stats()
		want := uint64(waves * limit)
		if s.Accepted != want || s.Rejected != uint64(waves*wave)-want {
			t.Errorf("accepted %d rejected %d, want %d and %d", s.Accepted, s.Rejected, want, uint64(waves*wave)-want)
		}
		if held.Load() != int64(want) || reset.Load() != int64(s.Rejected) {
			t.Errorf("peers: %d held, %d reset", held.Load(), reset.Load())
		}
		if peak.Load() > limit {
			t.Errorf("%d connections open at once, over the cap %d", peak.Load(), limit)
		}
		c := dial(t, addr)
		c.Write([]byte{'E'})
		if err := roundTrip(c, []byte("served after the bursts")); err != nil {
			t.Fatal(err)
		}
		f.sized("%d waves of %d simultaneous connects; max_connections %d", waves, wave, limit)
		f.note("accepted %d, rejected (reset at once) %d; at most %d open at once", s.Accepted, s.Rejected, peak.Load())
	})
}

// TestFaultCloseFlood: peers that flood the server and never read, whose
// connections the server closes with a reply it cannot write: after
// Close the server reads and drops at most about recv_buffer_limit of
// each flood, then TCP pushes back; every connection is reset by
// close_timeout (not before it, less than a second late) with
// ErrCloseTimeout, counted in timed_out.
func TestFaultCloseFlood(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "close_timeout", backend)
		peers := scale(f, "peers", 10, 100)
		const timeout = 500 * time.Millisecond
		h := &filler{newCountingEcho(), make(chan *engine.Conn, peers)}
		m, addr := serve(t, h, backend, engine.WithWorkers(2), engine.WithSendBufferLimit(1<<20),
			engine.WithCloseTimeout(timeout))
		var sent atomic.Int64
		conns := make([]*engine.Conn, peers)
		peerConns := make([]net.Conn, peers)
		for i := range conns {
			peerConns[i] = tinyReceiver(t, addr)
			conns[i] = <-h.conns
		}
		// The kernel's buffers take what they can of the replies first;
		// then every connection's own buffer is topped up to the limit.
		settle(t, "the writes to peers that never read to stop", func() bool { return writesStopped(m) })
		for _, c := range conns {
			h.fill(c)
		}
		for _, pc := range peerConns {
			go flood(pc, &sent)
		}
		settle(t, "the floods under way", func() bool { return m.Stats().BytesIn > uint64(peers)*(64<<10) })
		before := m.Stats()
		start := time.Now()
		for _, c := range conns {
			c.Close()
		}
		settle(t, "every connection closed", func() bool { n, _, _ := h.closed(); return n == peers })
		took := time.Since(start)
		s := m.Stats()
		read := s.BytesIn - before.BytesIn
		h.wantClosed(t, peers, engine.ErrCloseTimeout)
		if took < timeout || took > timeout+time.Second*slowdown {
			t.Errorf("the last connection closed %v after Close, want %v to %v later", took, timeout, timeout+time.Second)
		}
		if s.TimedOut-before.TimedOut != uint64(peers) {
			t.Errorf("timed_out %d, want %d", s.TimedOut-before.TimedOut, peers)
		}
		// recv_buffer_limit (256 KiB) each, plus what the worker read
		// before it took the Close (the floods go on meanwhile), and what
		// a receive posted before the limit or read ahead may still take:
		// megabytes, where reading everything would be gigabytes.
		if bound := uint64(peers) * (4 << 20); read > bound {
			t.Errorf("read %s after Close, bound %s", mib(int64(read)), mib(int64(bound)))
		}
		f.sized("%d peers flooding, never reading; closed with 1 MiB they cannot take; close_timeout %v", peers, timeout)
		f.note("%s read after Close in all (%s per peer), then none; every connection reset %v after Close at the latest",
			mib(int64(read)), mib(int64(read)/int64(peers)), took.Round(time.Millisecond))
	})
}
