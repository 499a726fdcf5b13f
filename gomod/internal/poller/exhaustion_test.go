package poller

import (
	"bytes"
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
		socks, clients := acceptConns(t, p, conns)
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
		refs := make(map[Sock]Ref, conns) // acceptConns: the socket is the token
		for _, s := range socks {
			refs[s.Sock()] = s
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
					p.PostRecv(refs[s], 64<<10)
				} else {
					done++
				}
			}
		}
		for i, s := range socks {
			if !bytes.Equal(got[s.Sock()], want[i]) {
				t.Fatalf("socket of client %d: %d bytes, not what it sent", i, len(got[s.Sock()]))
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
