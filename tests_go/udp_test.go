package engine_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestUDPEcho: datagrams go round trip through an endpoint on IPv4, IPv6
// and a dual-stack IPv6 endpoint reached over IPv4, whole (an empty one
// and the longest one included), and the reply comes from the endpoint's
// address, sent to the address the datagram came from.
func TestUDPEcho(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		for _, tc := range []struct{ name, network, bind, to string }{
			{"v4", "udp4", "127.0.0.1:0", "127.0.0.1"},
			{"v6", "udp6", "[::1]:0", "::1"},
			{"v4-to-dual-stack", "udp4", "[::]:0", "127.0.0.1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				m := startManager(t, newUDPEcho(), backend)
				e := bindUDP(t, m, tc.bind)
				to := netip.AddrPortFrom(netip.MustParseAddr(tc.to), e.Addr().Port())
				cli := newUDPPeer(t, tc.network)
				buf := make([]byte, 1<<17)
				for _, msg := range [][]byte{[]byte("ping"), {}, bytes.Repeat([]byte("x"), engine.MaxDatagram)} {
					if _, err := cli.WriteToUDPAddrPort(msg, to); err != nil {
						t.Fatal(err)
					}
					n, from, err := cli.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("%d bytes: %v", len(msg), err)
					}
					if !bytes.Equal(buf[:n], msg) {
						t.Fatalf("sent %d bytes, got %d back", len(msg), n)
					}
					if from.Addr().Unmap() != to.Addr() || from.Port() != to.Port() {
						t.Errorf("reply from %v, want %v", from, to)
					}
				}
				// The reply may arrive before its worker counts it.
				eventually(t, "3 datagrams in and out", func() bool {
					s := m.Stats()
					return s.DatagramsIn == 3 && s.DatagramsOut == 3 && s.Endpoints == 1
				})
			})
		}
	})
}

// TestUDPManyDatagramsAllDelivered: thousands of datagrams, in bursts the
// sockets' buffers hold, each come back exactly once and whole (in any
// order), from an endpoint that takes many per system call.
func TestUDPManyDatagramsAllDelivered(t *testing.T) {
	const bursts, per, size = 20, 100, 200
	forBackends(t, func(t *testing.T, backend string) {
		m := startManager(t, newUDPEcho(), backend, engine.WithWorkers(2))
		e := bindUDP(t, m, "127.0.0.1:0")
		cli := newUDPPeer(t, "udp4")
		seen := make(map[uint32]int)
		msg, buf := make([]byte, size), make([]byte, 1<<16)
		for b := range bursts {
			for i := range per {
				seq := uint32(b*per + i)
				binary.BigEndian.PutUint32(msg, seq)
				for j := 4; j < size; j++ {
					msg[j] = byte(seq) + byte(j)
				}
				if _, err := cli.WriteToUDPAddrPort(msg, e.Addr()); err != nil {
					t.Fatal(err)
				}
			}
			for range per {
				n, _, err := cli.ReadFromUDPAddrPort(buf)
				if err != nil {
					t.Fatalf("burst %d: %v (%d datagrams back so far)", b, err, len(seen))
				}
				seq := binary.BigEndian.Uint32(buf)
				if n != size || seq >= bursts*per {
					t.Fatalf("a datagram of %d bytes, seq %d", n, seq)
				}
				for j := 4; j < size; j++ {
					if buf[j] != byte(seq)+byte(j) {
						t.Fatalf("datagram %d corrupted at byte %d", seq, j)
					}
				}
				seen[seq]++
			}
		}
		for seq, k := range seen {
			if k != 1 {
				t.Errorf("datagram %d came back %d times", seq, k)
			}
		}
		if len(seen) != bursts*per {
			t.Errorf("%d distinct datagrams back, want %d", len(seen), bursts*per)
		}
	})
}

// TestUDPConnectedRemote: an endpoint connected to a peer (WithRemote)
// takes datagrams from that peer only, sends to it without an address,
// and refuses another address.
func TestUDPConnectedRemote(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		var mu sync.Mutex
		var from []netip.AddrPort
		h := newUDPEcho()
		h.onData = func(e *engine.Endpoint, data []byte, addr netip.AddrPort) {
			mu.Lock()
			from = append(from, addr)
			mu.Unlock()
			if err := e.SendTo(data, netip.AddrPort{}); err != nil {
				t.Errorf("SendTo(remote): %v", err)
			}
		}
		m := startManager(t, h, backend)
		peer, stranger := newUDPPeer(t, "udp4"), newUDPPeer(t, "udp4")
		peerAddr := peer.Addr()
		e := bindUDP(t, m, "127.0.0.1:0", engine.WithRemote(peerAddr))
		if e.Remote() != peerAddr {
			t.Errorf("Remote() = %v, want %v", e.Remote(), peerAddr)
		}
		if _, err := stranger.WriteToUDPAddrPort([]byte("stranger"), e.Addr()); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.WriteToUDPAddrPort([]byte("peer"), e.Addr()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, src, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil || string(buf[:n]) != "peer" || src != e.Addr() {
			t.Fatalf("peer got %q from %v (%v), want \"peer\" from %v", buf[:n], src, err, e.Addr())
		}
		mu.Lock()
		if len(from) != 1 || from[0] != peerAddr {
			t.Errorf("datagrams from %v, want one from %v", from, peerAddr)
		}
		mu.Unlock()
		// Its own remote may be named; another address is refused.
		if err := e.SendTo([]byte("named"), peerAddr); err != nil {
			t.Errorf("SendTo(remote by name): %v", err)
		}
		other := stranger.Addr()
		var oe *engine.OptionError
		if err := e.SendTo([]byte("x"), other); !asOptionError(err, &oe) || oe.Name != "addr" {
			t.Errorf("SendTo(another address) on a connected endpoint: %v, want an OptionError for addr", err)
		}
		if n, _, err := peer.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "named" {
			t.Errorf("peer got %q (%v), want \"named\"", buf[:n], err)
		}
	})
}

// TestUDPPollMode: without a handler, datagrams come out of Poll as
// EventDatagram with their endpoint and address, and a SendTo made
// between rounds leaves at the next round.
func TestUDPPollMode(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := newManager(t, nil, backend)
		defer closeManager(t, m)
		e := bindUDP(t, m, "127.0.0.1:0")
		cli := newUDPPeer(t, "udp4")
		cliAddr := cli.Addr()
		m.Poll(0, 64, 0) // takes the endpoint up
		if _, err := cli.WriteToUDPAddrPort([]byte("hello"), e.Addr()); err != nil {
			t.Fatal(err)
		}
		var got *engine.Event
		deadline := time.Now().Add(waitBound)
		for got == nil && time.Now().Before(deadline) {
			evs, _ := m.Poll(0, 64, 100*time.Millisecond)
			for i := range evs {
				if evs[i].Kind == engine.EventDatagram {
					ev := evs[i]
					ev.Data = bytes.Clone(ev.Data)
					got = &ev
				}
			}
		}
		if got == nil {
			t.Fatal("no EventDatagram")
		}
		if got.Endpoint != e || string(got.Data) != "hello" || got.Addr != cliAddr || got.Err != nil || got.Kind.String() != "datagram" {
			t.Fatalf("event %+v", got)
		}
		if err := e.SendTo([]byte("back"), got.Addr); err != nil {
			t.Fatal(err)
		}
		m.Poll(0, 64, 0)
		buf := make([]byte, 16)
		if n, _, err := cli.ReadFromUDPAddrPort(buf); err != nil || string(buf[:n]) != "back" {
			t.Fatalf("got %q (%v)", buf[:n], err)
		}
	})
}
