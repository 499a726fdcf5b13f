package poller

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestMoreReadySocketsThanBuffers: more sockets with data waiting than the
// io_uring buffer ring has buffers (each needs several): receives that find
// the ring empty wait for the next round's returned buffers; every byte
// arrives, in order, and reading resumes for all. epoll runs it as well.
func TestMoreReadySocketsThanBuffers(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		const (
			conns = recvBufCount + recvBufCount/8
			size  = 2*recvBufSize + 100 // three buffers' worth each
		)
		l, addr, err := ListenTCP(netip.MustParseAddrPort("127.0.0.1:0"), conns, false)
		if err != nil {
			t.Fatal(err)
		}
		defer CloseSock(l)
		if err := p.Listen(l, 1); err != nil {
			t.Fatal(err)
		}
		defer p.Unregister(l)
		clients := make([]net.Conn, conns)
		for i := range clients {
			if clients[i], err = net.Dial("tcp", addr.String()); err != nil {
				t.Fatal(err)
			}
			defer clients[i].Close()
		}
		p.PostAccept(l, conns)
		socks := make(map[Sock]int, conns) // socket -> client index, by the peer's port
		byPort := make(map[uint16]int, conns)
		for i, c := range clients {
			byPort[uint16(c.LocalAddr().(*net.TCPAddr).Port)] = i
		}
		for _, c := range harvest(t, p, conns) {
			if c.Op != OpAccept || c.Err != nil {
				t.Fatalf("accept: %+v", c)
			}
			i, ok := byPort[c.Peer.Port()]
			if !ok {
				t.Fatalf("accepted an unknown peer %v", c.Peer)
			}
			socks[c.Sock] = i
			if err := p.Register(c.Sock, uint64(c.Sock)); err != nil {
				t.Fatal(err)
			}
		}
		// Every client's bytes wait in its socket before any receive is posted.
		want := make([][]byte, conns)
		for i, c := range clients {
			want[i] = bytes.Repeat([]byte{byte(i), byte(i >> 8), 0xA5}, size/3+1)[:size]
			if _, err := c.Write(want[i]); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond)
		got := make(map[Sock][]byte, conns)
		for s := range socks {
			p.PostRecv(s, 64<<10)
		}
		batch := make([]Completion, 128)
		done := 0
		deadline := time.Now().Add(20 * time.Second)
		for done < conns {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d sockets got all their bytes", done, conns)
			}
			n, err := p.Wait(batch, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range batch[:n] {
				s := Sock(c.Token)
				if c.Op != OpRecv || c.Err != nil || len(c.Data) == 0 {
					t.Fatalf("receive on %d: %+v", s, c)
				}
				got[s] = append(got[s], c.Data...)
				if len(got[s]) < size {
					p.PostRecv(s, 64<<10)
				} else {
					done++
				}
			}
		}
		for s, i := range socks {
			if !bytes.Equal(got[s], want[i]) {
				t.Fatalf("socket of client %d: %d bytes, not what it sent", i, len(got[s]))
			}
			release(p, s)
		}
		if starved, ok := ringStarved(p); ok {
			if starved == 0 {
				t.Fatalf("the buffer ring never ran out: the test did not exercise it")
			}
			t.Logf("%d receives found the buffer ring empty and were armed again", starved)
		}
	})
}
