package engine_test

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
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
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
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
		stopped := func() bool {
			before := m.Stats().BytesOut
			time.Sleep(200 * time.Millisecond)
			return m.Stats().BytesOut == before
		}
		settle(t, "the writes to peers that never read to stop", stopped)
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
		n, errs, twice := h.closed()
		if n != peers || twice != 0 {
			t.Errorf("closed %d of %d (%d twice)", n, peers, twice)
		}
		for _, err := range errs {
			if !errors.Is(err, engine.ErrCloseTimeout) {
				t.Errorf("closed with %s, want the close timeout", describe(err))
			}
		}
		f.sized("%d peers that never read (4 KiB receive buffers); send_buffer_limit %s", peers, mib(limit))
		f.note("pending %s in all (bound %s); heap +%s while full, %s when first full; Close resets each after 200 ms",
			mib(s.PendingSendBytes), mib(int64(peers*limit)), mib(grown), mib(int64(heapFull)))
	})
}

// hasher keeps a digest of what each connection delivered, by peer port.
type hasher struct {
	*countingEcho
	mu2     sync.Mutex
	conns   chan *engine.Conn
	digests map[uint16]upload
}

func (h *hasher) OnOpen(c *engine.Conn) {
	h.countingEcho.OnOpen(c)
	c.Context = &connHash{h: sha256.New()}
	h.conns <- c
}

func (h *hasher) OnRecv(c *engine.Conn, data []byte) {
	h.recvs.Add(1)
	ch := c.Context.(*connHash)
	ch.h.Write(data)
	ch.n += len(data)
}

func (h *hasher) OnEOF(c *engine.Conn) {
	ch := c.Context.(*connHash)
	var u upload
	u.n = ch.n
	ch.h.Sum(u.sum[:0])
	h.mu2.Lock()
	h.digests[c.Peer().Port()] = u
	h.mu2.Unlock()
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
		h := &hasher{countingEcho: newCountingEcho(), conns: make(chan *engine.Conn, peers), digests: map[uint16]upload{}}
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
			port := uint16(x.c.LocalAddr().(*net.TCPAddr).Port)
			var sum [32]byte
			x.sum.Sum(sum[:0])
			settle(t, "the whole flood delivered", func() bool {
				h.mu2.Lock()
				defer h.mu2.Unlock()
				u, ok := h.digests[port]
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
						if errors.Is(err, syscall.ECONNRESET) {
							reset.Add(1)
							return
						}
						t.Error(err)
						return
					}
					c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
					_, err = c.Read(make([]byte, 1))
					var ne net.Error
					switch {
					case errors.As(err, &ne) && ne.Timeout():
						held.Add(1) // accepted: the server waits for it to speak
						mu.Lock()
						keep = append(keep, c)
						mu.Unlock()
						return
					case errors.Is(err, syscall.ECONNRESET):
						reset.Add(1)
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

// TestFaultAcceptEMFILE: the process runs out of descriptors (RLIMIT_NOFILE
// lowered, the rest filled) while a peer connects: accepts fail with EMFILE;
// the listener neither spins nor closes, keeps retrying every 100 ms, logs
// the episode once and counts it; once descriptors free up the waiting peer
// is served, and so are more peers at once than the accepts kept posted.
func TestFaultAcceptEMFILE(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "emfile", backend)
		episodes := scale(f, "episodes", 2, 10)
		hold := time.Duration(scale(f, "seconds each", 1, 3)) * time.Second
		// The descriptor limit is lowered before the listener posts its
		// accepts (io_uring takes the limit when an accept is submitted),
		// and stays lowered: each episode fills what is left of it.
		var orig syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
			t.Fatal(err)
		}
		low := orig
		low.Cur = uint64(openFDs(t) + 128)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
		var lmu sync.Mutex
		var logs []string
		m, err := engine.New(echoHandler{}, engine.WithBackend(backend))
		if err != nil {
			t.Fatal(err)
		}
		m.SetLogger(func(s string) {
			lmu.Lock()
			logs = append(logs, s)
			lmu.Unlock()
		})
		l, err := m.Listen(loopback, engine.WithAccepts(engine.DefaultAccepts))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeManager(t, m) })
		addr := l.Addr().String()
		var worstCPU float64
		var errorsPerEpisode []uint64
		for ep := 1; ep <= episodes; ep++ {
			// The server closes its side of the last episode's peers on
			// its own time: wait (a connection stops counting once its
			// socket is closed), or a descriptor it frees ends the
			// episode before it starts.
			settle(t, "the last peers gone", func() bool { return m.Stats().Connections == 0 })
			before := m.Stats()
			c, fill := dialOutOfDescriptors(t, addr)
			c.SetDeadline(time.Now().Add(hold + 10*time.Second))
			if _, err := c.Write([]byte("waiting")); err != nil {
				t.Fatal(err)
			}
			settle(t, "an accept failing with EMFILE", func() bool { return m.Stats().AcceptErrors > before.AcceptErrors })
			cpu0, t0 := cpuTime(), time.Now()
			time.Sleep(hold)
			cpu := (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
			worstCPU = max(worstCPU, cpu)
			during := m.Stats()
			for _, fd := range fill {
				fd.Close()
			}
			got := make([]byte, 7)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "waiting" {
				t.Fatalf("episode %d: the waiting peer was not served once descriptors freed: %q %v", ep, got, err)
			}
			c.Close()
			failed := during.AcceptErrors - before.AcceptErrors
			errorsPerEpisode = append(errorsPerEpisode, failed)
			// A retry every 100 ms of the accepts kept posted, no more.
			if bound := uint64(engine.DefaultAccepts) * uint64(hold/(100*time.Millisecond)+3); failed > bound {
				t.Errorf("episode %d: %d failed accepts in %s: a busy loop (bound %d)", ep, failed, hold, bound)
			}
			if cpu > 0.1 {
				t.Errorf("episode %d: %.0f%% of a CPU while out of descriptors", ep, cpu*100)
			}
			if during.AcceptErrorEpisodes != uint64(ep) || during.Listeners != 1 {
				t.Errorf("episode %d: %d episodes counted, %d listeners", ep, during.AcceptErrorEpisodes, during.Listeners)
			}
			lmu.Lock()
			nlogs := len(logs)
			last := ""
			if nlogs > 0 {
				last = logs[nlogs-1]
			}
			lmu.Unlock()
			if nlogs != ep || !strings.Contains(last, "too many open files") {
				t.Errorf("episode %d: %d log lines, the last %q", ep, nlogs, last)
			}
			// Served again, by more peers at once than the accepts posted.
			var wg sync.WaitGroup
			for range engine.DefaultAccepts + 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := net.Dial("tcp", addr)
					if err != nil {
						t.Error(err)
						return
					}
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					if err := roundTrip(c, []byte("after")); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
		}
		f.sized("%d episodes of %s out of descriptors (RLIMIT_NOFILE lowered, the rest filled), a peer waiting in each", episodes, hold)
		f.note("failed accepts per episode %v (retry every 100 ms x %d posted); worst CPU %.1f%%; %d log lines for %d episodes",
			errorsPerEpisode, engine.DefaultAccepts, worstCPU*100, len(logs), episodes)
	})
}

// dialOutOfDescriptors fills the descriptors the limit leaves and connects
// with the last free one: the server's accept has none left.
func dialOutOfDescriptors(t *testing.T, addr string) (net.Conn, []*os.File) {
	t.Helper()
	var fill []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		fill = append(fill, f)
	}
	t.Cleanup(func() {
		for _, f := range fill {
			f.Close()
		}
	})
	fill[len(fill)-1].Close()
	fill = fill[:len(fill)-1]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, fill
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
