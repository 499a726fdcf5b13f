package engine_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// raceLookup answers every name with addrs, in that order.
func raceLookup(addrs ...netip.Addr) engine.Option {
	return engine.WithLookup(func(context.Context, string) ([]netip.Addr, error) { return addrs, nil })
}

// TestConnectHostRacesABlackHole: a name's first address never answers (a
// full listener drops the SYNs); the second is started 250 ms later (RFC
// 8305's Connection Attempt Delay) and wins, long before the connect
// timeout a one-after-the-other connect would wait for.
func TestConnectHostRacesABlackHole(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		hole := fullListener(t) // 127.0.0.1:P
		good := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), hole.Port())
		r := newRecorder()
		m := newManager(t, r, backend, raceLookup(hole.Addr(), good.Addr()))
		t.Cleanup(func() { closeManager(t, m) })
		if _, err := m.Listen(good); err != nil {
			t.Fatal(err)
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		c, err := m.ConnectHost("raced.test", hole.Port(), 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		a, b := r.nextConn(t), r.nextConn(t)
		took := time.Since(start)
		in := a
		if a == c {
			in = b
		} else if b != c {
			t.Fatal("no connect event")
		}
		if c.Peer() != good {
			t.Errorf("peer %v, want %v", c.Peer(), good)
		}
		// Not before the delay (the first attempt was still in flight),
		// and far from the 30 s the black hole would have cost.
		if took < 200*time.Millisecond || took > 10*time.Second {
			t.Errorf("connected after %v", took)
		}
		if err := c.Send([]byte("raced")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the bytes through", func() bool { return string(r.received(in.ID())) == "raced" })
		if s := m.Stats(); s.Stray != 0 {
			t.Errorf("%d stray completions", s.Stray)
		}
	})
}

// TestConnectHostRaceEnds: with every address a black hole, or one a
// black hole and the other refusing, the connect timeout ends the
// connection and its attempts; so does a close while they are in flight.
// No socket is left (newManager's leak check).
func TestConnectHostRaceEnds(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		hole := fullListener(t)
		refusing := netip.MustParseAddr("127.0.0.3") // nothing listens there
		r := newRecorder()
		m := newManager(t, r, backend, raceLookup(hole.Addr(), refusing, hole.Addr()))
		t.Cleanup(func() { closeManager(t, m) })
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		c, err := m.ConnectHost("holes.test", hole.Port(), 700*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.waitClosed(t, c.ID()); !errors.Is(err, engine.ErrConnectTimeout) {
			t.Errorf("every attempt hanging or refused: closed with %v", describe(err))
		}
		c, err = m.ConnectHost("holes.test", hole.Port(), 0)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(600 * time.Millisecond) // all three attempts started
		c.Close()
		if err := r.waitClosed(t, c.ID()); err != nil {
			t.Errorf("closed while racing: %v", describe(err))
		}
		eventually(t, "no connection left", func() bool { return m.Stats().Connections == 0 })
		if s := m.Stats(); s.Stray != 0 {
			t.Errorf("%d stray completions", s.Stray)
		}
	})
}
