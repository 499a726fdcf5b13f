package poller

import (
	"bytes"
	"testing"
	"time"
)

// Tests of how io_uring uses its provided buffers: few and warm under light
// load, read-ahead kept in place, every buffer back in the end.

// forUring runs f on an io_uring port, as forBackends does.
func forUring(t *testing.T, f func(t *testing.T, p *uring)) {
	if _, err := uringAvailable(); err != nil {
		t.Skipf("io_uring unavailable here: %v", err) // the CI kernel has it: the fallback tests check the reason
	}
	forBackend(t, "io_uring", func(t *testing.T, p Poller) { f(t, p.(*uring)) })
}

// waitRecv waits for the receive completion of s and checks that it
// carries data; it returns the completion, its bytes still in the port's
// memory (valid until the next Wait).
func waitRecv(t *testing.T, p *uring, r Ref) Completion {
	s := r.Sock()
	t.Helper()
	batch := make([]Completion, 1)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		n, err := p.Wait(batch, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			if c := batch[0]; c.Op != OpRecv || c.Token != uint64(s) || c.Err != nil || len(c.Data) == 0 {
				t.Fatalf("completion %+v, want data on socket %d", c, s)
			}
			return batch[0]
		}
	}
	t.Fatalf("no receive on socket %d within 5 s", s)
	return Completion{}
}

// settle cancels every socket, drains the completions and releases them.
func settle(t *testing.T, p *uring, socks []Ref) {
	t.Helper()
	for _, s := range socks {
		p.Cancel(s)
	}
	for _, s := range socks {
		for p.fds.get(s).rx.kernel == rxArmed || p.fds.get(s).rx.wanted {
			if _, err := p.Wait(make([]Completion, 64), 10*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		release(p, s)
	}
	p.Wait(make([]Completion, 64), 0) // the last round's buffers go back
	if p.holding != 0 {
		t.Fatalf("%d buffers still held as read-ahead with no socket left", p.holding)
	}
}

// TestRingReusesFewBuffers: one connection's receives, one after another,
// come in a handful of buffers, not in turn in every buffer of the ring:
// the ring offers about what is used, the most recently returned first.
func TestRingReusesFewBuffers(t *testing.T) {
	forUring(t, func(t *testing.T, p *uring) {
		socks, clients := acceptConns(t, p, 1)
		s, cli := socks[0], clients[0]
		used := map[int]bool{}
		msg := bytes.Repeat([]byte("warm"), 256)
		for i := 0; i < 2*recvBufCount; i++ {
			p.PostRecv(s, 64<<10)
			if _, err := cli.Write(msg); err != nil {
				t.Fatal(err)
			}
			got := 0
			for got < len(msg) {
				if got > 0 {
					p.PostRecv(s, 64<<10)
				}
				c := waitRecv(t, p, s)
				bid := ringBuffer(p, c.Data)
				if bid < 0 {
					t.Fatalf("round %d: bytes delivered from outside the ring", i)
				}
				used[bid] = true
				got += len(c.Data)
			}
		}
		if len(used) > recvBufCount/8 {
			t.Fatalf("%d buffers used by one connection's receives, want at most %d", len(used), recvBufCount/8)
		}
		settle(t, p, socks)
	})
}

// TestReadAheadDeliveredInPlace: bytes that arrive before the receive is
// posted stay in their ring buffer and are delivered from it, in order,
// in pieces as small as the posted max.
func TestReadAheadDeliveredInPlace(t *testing.T) {
	forUring(t, func(t *testing.T, p *uring) {
		socks, clients := acceptConns(t, p, 1)
		s, cli := socks[0], clients[0]
		p.PostRecv(s, 64<<10)
		cli.Write([]byte("x"))
		waitRecv(t, p, s)
		want := make([]byte, 1000)
		for i := range want {
			want[i] = byte(i % 251)
		}
		cli.Write(want)
		for deadline := time.Now().Add(5 * time.Second); p.fds.get(s).aheadLen() < len(want); {
			if time.Now().After(deadline) {
				t.Fatalf("read ahead %d of %d bytes", p.fds.get(s).aheadLen(), len(want))
			}
			p.Wait(make([]Completion, 1), 10*time.Millisecond)
		}
		var got []byte
		bid := -1
		for len(got) < len(want) {
			p.PostRecv(s, 300)
			c := waitRecv(t, p, s)
			if len(c.Data) > 300 {
				t.Fatalf("%d bytes for a receive posted for 300", len(c.Data))
			}
			if b := ringBuffer(p, c.Data); b < 0 || (bid >= 0 && b != bid) {
				t.Fatalf("read-ahead delivered from buffer %d, then %d (-1: copied out)", bid, b)
			} else {
				bid = b
			}
			got = append(got, c.Data...)
		}
		if !bytes.Equal(got, want) {
			t.Fatal("read-ahead delivered out of order")
		}
		settle(t, p, socks)
	})
}

// TestFewBuffersHeldAsReadAhead: when more sockets read ahead than the
// port may hold ring buffers for, the rest is copied out; every socket
// still gets its bytes, in order, and every buffer comes back.
func TestFewBuffersHeldAsReadAhead(t *testing.T) {
	forUring(t, func(t *testing.T, p *uring) {
		const n = maxHeld + 16
		socks, clients := acceptConns(t, p, n)
		for i, s := range socks {
			p.PostRecv(s, 64<<10)
			clients[i].Write([]byte("x"))
			waitRecv(t, p, s)
		}
		want := func(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8), 0x5A}, 200) }
		for i, c := range clients {
			c.Write(want(i))
		}
		for deadline := time.Now().Add(5 * time.Second); ; {
			ahead := 0
			for _, s := range socks {
				ahead += p.fds.get(s).aheadLen()
			}
			if ahead == n*len(want(0)) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("read ahead %d of %d bytes", ahead, n*len(want(0)))
			}
			p.Wait(make([]Completion, 1), 10*time.Millisecond)
		}
		if p.holding != maxHeld {
			t.Fatalf("%d buffers held as read-ahead, want the most allowed, %d", p.holding, maxHeld)
		}
		inPlace := 0
		for i, s := range socks {
			var got []byte
			for len(got) < len(want(i)) {
				p.PostRecv(s, 64<<10)
				c := waitRecv(t, p, s)
				if ringBuffer(p, c.Data) >= 0 {
					inPlace++
				}
				got = append(got, c.Data...)
			}
			if !bytes.Equal(got, want(i)) {
				t.Fatalf("socket %d: wrong bytes", i)
			}
		}
		if inPlace != maxHeld {
			t.Fatalf("%d read-aheads delivered in place, want %d", inPlace, maxHeld)
		}
		settle(t, p, socks)
	})
}

// TestBuffersComeBackFromForgottenSockets: sockets canceled and forgotten
// at once, while their peers still write and with read-ahead in held
// buffers, give every buffer back.
func TestBuffersComeBackFromForgottenSockets(t *testing.T) {
	forUring(t, func(t *testing.T, p *uring) {
		socks, clients := acceptConns(t, p, 32)
		for i, s := range socks {
			p.PostRecv(s, 64<<10)
			clients[i].Write([]byte("x"))
			waitRecv(t, p, s) // the receive is armed again: read-ahead
		}
		stop := make(chan struct{})
		defer close(stop)
		for _, c := range clients {
			go func() {
				chunk := make([]byte, 4<<10)
				for {
					select {
					case <-stop:
						return
					default:
					}
					c.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
		for deadline := time.Now().Add(5 * time.Second); ; {
			ahead := 0
			for _, s := range socks {
				if p.fds.get(s).aheadLen() > 0 {
					ahead++
				}
			}
			if ahead == len(socks) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d sockets read ahead", ahead, len(socks))
			}
			p.Wait(make([]Completion, 1), time.Millisecond)
		}
		for _, s := range socks {
			p.Cancel(s)
			release(p, s) // before the cancels are even submitted
		}
		batch := make([]Completion, 64)
		for i := 0; i < 20; i++ {
			if _, err := p.Wait(batch, 5*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		if n := ringAccounted(p); n != recvBufCount || p.buf.offered+len(p.buf.returned)+len(p.recycle) != recvBufCount {
			t.Fatalf("%d of %d buffers accounted for, %d held", n, recvBufCount, p.holding)
		}
	})
}
