package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestUDPBroadcast: an endpoint made WithBroadcast sends to a broadcast
// address (the loopback's, 127.255.255.255), and one listening on the
// wildcard address gets it; without the option the kernel refuses the
// send, which the sender counts as a datagram error.
func TestUDPBroadcast(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		got := make(chan string, 4)
		h := newUDPEcho()
		h.onData = func(_ *engine.Endpoint, data []byte, _ netip.AddrPort) { got <- string(data) }
		m := startManager(t, h, backend)
		rx := bindUDP(t, m, "0.0.0.0:0")
		to := netip.AddrPortFrom(netip.MustParseAddr("127.255.255.255"), rx.Addr().Port())

		plain := bindUDP(t, m, "127.0.0.1:0")
		if err := plain.SendTo([]byte("refused"), to); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the refused broadcast counted", func() bool { return m.Stats().DatagramErrors == 1 })

		caster := bindUDP(t, m, "127.0.0.1:0", engine.WithBroadcast(true))
		if err := caster.SendTo([]byte("broadcast"), to); err != nil {
			t.Fatal(err)
		}
		select {
		case s := <-got:
			if s != "broadcast" {
				t.Fatalf("got %q, want \"broadcast\"", s)
			}
		case <-time.After(waitBound):
			t.Fatal("the broadcast did not arrive")
		}
		if s := m.Stats(); s.DatagramErrors != 1 {
			t.Errorf("%d datagram errors, want 1", s.DatagramErrors)
		}
	})
}
