package engine_test

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

func asOptionError(err error, oe **engine.OptionError) bool { return errors.As(err, oe) }

// TestUDPSendToBufferFull: a SendTo that would take the endpoint's pending
// bytes past the send buffer limit fails with ErrBufferFull and queues
// nothing; once the worker has sent the queue, SendTo works again.
func TestUDPSendToBufferFull(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := newManager(t, nil, backend, engine.WithSendBufferLimit(1000))
		defer closeManager(t, m)
		e := bindUDP(t, m, "127.0.0.1:0")
		cli := newUDPPeer(t, "udp4")
		to := cli.Addr()
		msg := bytes.Repeat([]byte("d"), 100)
		for i := range 10 {
			if err := e.SendTo(msg, to); err != nil {
				t.Fatalf("SendTo %d: %v", i, err)
			}
		}
		if err := e.SendTo([]byte("x"), to); !errors.Is(err, engine.ErrBufferFull) {
			t.Fatalf("SendTo over the limit: %v, want ErrBufferFull", err)
		}
		if p, s := e.Pending(), m.Stats().PendingSendBytes; p != 1000 || s != 1000 {
			t.Fatalf("pending %d (stats %d) after BufferFull, want 1000", p, s)
		}
		deadline := time.Now().Add(waitBound)
		for e.Pending() > 0 && time.Now().Before(deadline) {
			m.Poll(0, 64, 10*time.Millisecond)
		}
		buf := make([]byte, 200)
		for i := range 10 {
			if n, _, err := cli.ReadFromUDPAddrPort(buf); err != nil || n != 100 {
				t.Fatalf("datagram %d: %d bytes, %v", i, n, err)
			}
		}
		if err := e.SendTo([]byte("x"), to); err != nil {
			t.Fatalf("SendTo once sent: %v", err)
		}
	})
}

// TestUDPTruncatedCounted: a datagram longer than the endpoint's receive
// size is not delivered short: it is counted and reported as a
// *TruncatedError, and the datagrams around it arrive whole.
func TestUDPTruncatedCounted(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		h := newUDPEcho()
		m := startManager(t, h, backend)
		e := bindUDP(t, m, "127.0.0.1:0", engine.WithDatagramSize(100))
		cli := newUDPPeer(t, "udp4")
		for _, n := range []int{100, 200, 50} {
			if _, err := cli.WriteToUDPAddrPort(bytes.Repeat([]byte("t"), n), e.Addr()); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 300)
		for _, want := range []int{100, 50} {
			if n, _, err := cli.ReadFromUDPAddrPort(buf); err != nil || n != want {
				t.Fatalf("echo of %d bytes: got %d, %v", want, n, err)
			}
		}
		select {
		case err := <-h.errCh:
			var te *engine.TruncatedError
			if !errors.Is(err, engine.ErrTruncated) || !errors.As(err, &te) || te.Limit != 100 || te.Size < te.Limit {
				t.Errorf("reported %v, want a TruncatedError of limit 100", err)
			}
		case <-time.After(waitBound):
			t.Fatal("the truncated datagram was not reported")
		}
		if s := m.Stats(); s.DatagramsTruncated != 1 || s.DatagramsIn != 2 {
			t.Errorf("truncated %d, in %d; want 1, 2", s.DatagramsTruncated, s.DatagramsIn)
		}
	})
}

// TestUDPBadInput: bad arguments get an OptionError at the call, and
// leave nothing behind.
func TestUDPBadInput(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := startManager(t, newUDPEcho(), backend)
		e := bindUDP(t, m, "127.0.0.1:0")
		to := netip.MustParseAddrPort("127.0.0.1:9")
		var oe *engine.OptionError
		for _, tc := range []struct {
			name string
			err  error
			opt  string
		}{
			{"too long", e.SendTo(make([]byte, engine.MaxDatagram+1), to), "data"},
			{"no address", e.SendTo([]byte("x"), netip.AddrPort{}), "addr"},
			{"port 0", e.SendTo([]byte("x"), netip.MustParseAddrPort("127.0.0.1:0")), "addr"},
			{"IPv6 to IPv4", e.SendTo([]byte("x"), netip.MustParseAddrPort("[::1]:9")), "addr"},
			{"bind no address", bindErr(m, netip.AddrPort{}), "address"},
			{"remote port 0", bindErr(m, netip.MustParseAddrPort("127.0.0.1:0"), engine.WithRemote(netip.MustParseAddrPort("127.0.0.1:0"))), "remote"},
			{"IPv6 remote", bindErr(m, netip.MustParseAddrPort("127.0.0.1:0"), engine.WithRemote(netip.MustParseAddrPort("[::1]:9"))), "remote"},
			{"size 0", bindErr(m, netip.MustParseAddrPort("127.0.0.1:0"), engine.WithDatagramSize(0)), "datagram_size"},
			{"receives 0", bindErr(m, netip.MustParseAddrPort("127.0.0.1:0"), engine.WithDatagramReceives(0)), "receives"},
			{"stream option", bindErr(m, netip.MustParseAddrPort("127.0.0.1:0"), engine.WithFraming(&engine.Lines{MaxLine: 100, Terminator: []byte("\n")})), "options"},
			{"UDP option on Listen", listenErr(m, engine.WithBroadcast(true)), "options"},
		} {
			if !asOptionError(tc.err, &oe) || oe.Name != tc.opt {
				t.Errorf("%s: %v, want an OptionError for %s", tc.name, tc.err, tc.opt)
			}
		}
		if _, err := m.BindUDP(e.Addr()); err == nil {
			t.Error("a second bind of the same port succeeded")
		}
		if p := e.Pending(); p != 0 {
			t.Errorf("pending %d after refused sends", p)
		}
		if n := len(m.Endpoints()); n != 1 {
			t.Errorf("%d endpoints, want 1", n)
		}
	})
}

func bindErr(m *engine.Manager, addr netip.AddrPort, opts ...engine.ListenOption) error {
	e, err := m.BindUDP(addr, opts...)
	if err == nil {
		e.Close()
	}
	return err
}

func listenErr(m *engine.Manager, opts ...engine.ListenOption) error {
	l, err := m.Listen(loopback, opts...)
	if err == nil {
		l.Close()
	}
	return err
}
