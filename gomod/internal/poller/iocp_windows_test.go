package poller

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// Tests of what the iocp backend does its own way.

// TestIdleReceiveWaitsInTheKernel: a receive posted on a silent socket is
// one zero-byte WSARecv in the kernel, holding no buffer; Wait sleeps
// through it (no completion, no spinning) until data arrives.
func TestIdleReceiveWaitsInTheKernel(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		s, cli := pair(t, p)
		ip := p.(*iocp)
		if err := p.PostRecv(s, 1<<16); err != nil {
			t.Fatal(err)
		}
		if st := ip.socks.get(s); !st.probing || st.queued {
			t.Fatalf("posted receive: probing %v queued %v, want a probe in the kernel", st.probing, st.queued)
		}
		start := time.Now()
		if n, err := p.Wait(make([]Completion, 8), 200*time.Millisecond); n != 0 || err != nil {
			t.Fatalf("Wait on a silent socket: %d completions, %v", n, err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("Wait returned after %v with nothing to report: the probe completed early", d)
		}
		cli.Write([]byte("late"))
		if c := harvest(t, p, 1)[0]; c.Op != OpRecv || string(c.Data) != "late" {
			t.Fatalf("receive %+v", c)
		}
		release(p, s)
	})
}

// TestAcceptOfResetPeerKeepsListening: an accept that fails because its
// peer reset first is posted again, not reported: the listener goes on and
// the next peer is accepted by that same accept.
func TestAcceptOfResetPeerKeepsListening(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		l, addr := listen(t, p, "127.0.0.1:0", 16, 1)
		gone, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		gone.(*net.TCPConn).SetLinger(0)
		gone.Close()
		time.Sleep(50 * time.Millisecond) // the reset arrives before the accept is posted
		p.PostAccept(l, 1)
		next, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer next.Close()
		for {
			c := harvest(t, p, 1)[0]
			if c.Op != OpAccept || c.Err != nil {
				t.Fatalf("accept %+v", c)
			}
			CloseSock(c.Sock)
			if c.Peer.String() == next.LocalAddr().String() {
				break
			}
			// The OS handed over the reset connection after all: its
			// accept completed, and the next one is posted for the peer.
			p.PostAccept(l, 1)
		}
		quiet(t, p) // nothing more: no accept is posted
		p.Unregister(l)
	})
}

// TestIPv6AcceptAndConnect: an IPv6 listener accepts into IPv6 sockets
// (AcceptEx needs the listener's family), and ConnectEx connects one.
func TestIPv6AcceptAndConnect(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		ls, addr, err := ListenTCP(netip.MustParseAddrPort("[::1]:0"), 16, false, &SockOptions{})
		if err != nil {
			t.Skipf("no IPv6 loopback: %v", err)
		}
		defer CloseSock(ls)
		l := register(t, p.Listen, ls, 1)
		p.PostAccept(l, 1)
		cs, err := NewConnectSocket(addr, &SockOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := register(t, p.Register, cs, 2)
		if done, err := p.PostConnect(s, addr); done || err != nil {
			t.Fatalf("PostConnect: %v %v", done, err)
		}
		var accepted Sock = NoSock
		for _, c := range harvest(t, p, 2) {
			switch {
			case c.Err != nil:
				t.Fatalf("%+v", c)
			case c.Op == OpAccept:
				accepted = c.Sock
				if local, _ := LocalAddr(cs); c.Peer != local {
					t.Errorf("accepted peer %v, connecting socket is %v", c.Peer, local)
				}
			case c.Op != OpConnect:
				t.Fatalf("%+v", c)
			}
		}
		if peer, err := PeerAddr(cs); err != nil || peer != addr {
			t.Errorf("connected socket's peer %v %v, want %v", peer, err, addr)
		}
		CloseSock(accepted)
		release(p, s)
		p.Unregister(l)
	})
}
