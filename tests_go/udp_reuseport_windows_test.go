package engine_test

import (
	"errors"
	"net/netip"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestUDPReusePortIsRefused: Windows has no SO_REUSEPORT: BindUDP with it
// fails with WSAEOPNOTSUPP and leaves nothing open.
func TestUDPReusePortIsRefused(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := newManager(t, newUDPEcho(), backend)
		defer closeManager(t, m)
		if _, err := m.BindUDP(netip.MustParseAddrPort("127.0.0.1:0"), engine.WithReusePort(true)); !errors.Is(err, windows.WSAEOPNOTSUPP) {
			t.Fatalf("BindUDP with reuse port: %v, want WSAEOPNOTSUPP", describe(err))
		}
		if n := len(m.Endpoints()); n != 0 {
			t.Fatalf("%d endpoints after the refused one", n)
		}
	})
}
