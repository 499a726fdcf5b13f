package engine_test

import (
	"errors"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestReusePortIsRefused: Windows has no SO_REUSEPORT (its SO_REUSEADDR
// lets another socket steal the port), so asking for it fails at Listen
// with WSAEOPNOTSUPP and leaves nothing open.
func TestReusePortIsRefused(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := newManager(t, echoHandler{}, backend)
		defer closeManager(t, m)
		if _, err := m.Listen(loopback, engine.WithReusePort(true)); !errors.Is(err, windows.WSAEOPNOTSUPP) {
			t.Fatalf("Listen with reuse port: %v, want WSAEOPNOTSUPP", describe(err))
		}
		if n := len(m.Listeners()); n != 0 {
			t.Fatalf("%d listeners after the refused one", n)
		}
	})
}
