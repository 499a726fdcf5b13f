package engine_test

import (
	"testing"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestReusePortSharesAPort: with WithReusePort two managers (as two
// processes would) listen on one port, and the kernel spreads the
// connections over both.
func TestReusePortSharesAPort(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		a, b := startManager(t, echoHandler{}, backend), startManager(t, echoHandler{}, backend)
		la, err := a.Listen(loopback, engine.WithReusePort(true))
		if err != nil {
			t.Fatal(err)
		}
		lb, err := b.Listen(la.Addr(), engine.WithReusePort(true))
		if err != nil {
			t.Fatal(err)
		}
		if lb.Addr() != la.Addr() {
			t.Fatalf("second listener on %v, not %v", lb.Addr(), la.Addr())
		}
		for i := 0; i < 40; i++ {
			c := dial(t, la.Addr().String())
			if err := roundTrip(c, []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
		eventually(t, "40 connections accepted by the two", func() bool {
			return a.Stats().Accepted+b.Stats().Accepted == 40
		})
	})
}
