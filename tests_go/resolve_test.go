package engine_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestConnectHostTriesEveryAddress: a name whose addresses refuse but the
// last (nothing listens on ::1 or 127.0.0.2 at that port): each is tried
// in turn until the connect succeeds.
func TestConnectHostTriesEveryAddress(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		var asked []string
		lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
			asked = append(asked, host)
			return []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.2"),
				netip.MustParseAddr("127.0.0.1")}, nil
		}
		m, addr := serve(t, r, backend, engine.WithLookup(lookup)) // 127.0.0.1 only
		port := netip.MustParseAddrPort(addr).Port()
		c, err := m.ConnectHost("service.test", port, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		a, b := r.nextConn(t), r.nextConn(t)
		in := a
		if a == c {
			in = b
		} else if b != c {
			t.Fatal("no connect event")
		}
		if c.Peer() != netip.MustParseAddrPort(addr) {
			t.Errorf("peer %v, want %v", c.Peer(), addr)
		}
		if err := c.Send([]byte("hi")); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the bytes through", func() bool { return string(r.received(in.ID())) == "hi" })
		if len(asked) != 1 || asked[0] != "service.test" {
			t.Errorf("looked up %v", asked)
		}
	})
}

// TestConnectHostFailures: a name that cannot be resolved ends the
// connection with a *ResolveError; every address refusing, with the last
// refusal; a bad port or option at the call.
func TestConnectHostFailures(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		m, _ := serve(t, r, backend)
		c, err := m.ConnectHost("no..such..name", 80, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var re *engine.ResolveError
		if err := r.waitClosed(t, c.ID()); !errors.As(err, &re) || re.Host != "no..such..name" {
			t.Errorf("unresolvable name: closed with %v", describe(err))
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		refused := uint16(l.Addr().(*net.TCPAddr).Port)
		l.Close() // nothing listens on it now
		c, err = m.ConnectHost("localhost", refused, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.waitClosed(t, c.ID()); err == nil || errors.As(err, &re) {
			t.Errorf("every address refusing: closed with %v", describe(err))
		}
		var oe *engine.OptionError
		if _, err := m.ConnectHost("localhost", 0, time.Second); !errors.As(err, &oe) {
			t.Errorf("port 0: %v", err)
		}
		if _, err := m.ConnectHost("localhost", 80, time.Second, engine.SockOptions{KeepCount: -1}); !errors.As(err, &oe) {
			t.Errorf("bad option: %v", err)
		}
	})
}

// TestConnectHostSlowLookup: the connect timeout covers the lookup; a
// connection closed, or a manager closed, while its name is being
// resolved ends at once and stops the lookup (no goroutine left behind).
func TestConnectHostSlowLookup(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		stuck := func(ctx context.Context, _ string) ([]netip.Addr, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		m, _ := serve(t, r, backend, engine.WithLookup(stuck))
		c, err := m.ConnectHost("slow.test", 80, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		err = r.waitClosed(t, c.ID())
		if !errors.Is(err, engine.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("lookup past the timeout: closed with %v", describe(err))
		}
		c, _ = m.ConnectHost("slow.test", 80, 0)
		c.Close()
		if err := r.waitClosed(t, c.ID()); err != nil {
			t.Errorf("closed while resolving: %v", describe(err))
		}
		c, _ = m.ConnectHost("slow.test", 80, 0) // the manager's close ends it
		_ = c
	})
}
