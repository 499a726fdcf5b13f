package engine_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestUDPReusePortSharesAPort: with WithReusePort two managers bind one
// UDP port and the kernel spreads the peers over both; without it the
// second bind is EADDRINUSE.
func TestUDPReusePortSharesAPort(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		a, b := startManager(t, newUDPEcho(), backend), startManager(t, newUDPEcho(), backend)
		ea := bindUDP(t, a, "127.0.0.1:0", engine.WithReusePort(true))
		if _, err := b.BindUDP(ea.Addr()); !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("a second bind without reuse_port: %v, want EADDRINUSE", err)
		}
		eb, err := b.BindUDP(ea.Addr(), engine.WithReusePort(true))
		if err != nil {
			t.Fatal(err)
		}
		if eb.Addr() != ea.Addr() {
			t.Fatalf("second endpoint on %v, not %v", eb.Addr(), ea.Addr())
		}
		const peers = 40
		buf := make([]byte, 16)
		for i := range peers {
			p := newUDPPeer(t, "udp4")
			if _, err := p.WriteToUDPAddrPort([]byte{byte(i)}, ea.Addr()); err != nil {
				t.Fatal(err)
			}
			if n, _, err := p.ReadFromUDPAddrPort(buf); err != nil || n != 1 || buf[0] != byte(i) {
				t.Fatalf("peer %d: %v %v", i, buf[:n], err)
			}
		}
		eventually(t, "40 datagrams taken by the two", func() bool {
			return a.Stats().DatagramsIn+b.Stats().DatagramsIn == peers
		})
		if a.Stats().DatagramsIn == 0 || b.Stats().DatagramsIn == 0 {
			t.Errorf("datagrams in: %d and %d; want both to take some", a.Stats().DatagramsIn, b.Stats().DatagramsIn)
		}
	})
}
