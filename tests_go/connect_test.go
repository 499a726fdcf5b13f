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

func TestConnectEcho(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		srv := newEchoRecorder()
		_, addr := serve(t, srv, backend)
		cli := newRecorder()
		m, _ := serve(t, cli, backend)
		c, err := m.Connect(netip.MustParseAddrPort(addr), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !c.Outbound() || c.Peer().String() != addr {
			t.Errorf("outbound %v peer %v", c.Outbound(), c.Peer())
		}
		if err := c.Send([]byte("sent before connected")); err != nil {
			t.Fatal(err)
		}
		if got := cli.nextConn(t); got != c {
			t.Fatal("OnOpen for another connection")
		}
		eventually(t, "echo", func() bool { return string(cli.received(c.ID())) == "sent before connected" })
		if !c.Local().IsValid() || c.Local().Port() == 0 {
			t.Errorf("local address %v", c.Local())
		}
		c.Close()
		wantNil(t, cli.waitClosed(t, c.ID()))
		if s := m.Stats(); s.Connected != 1 {
			t.Errorf("connected = %d", s.Connected)
		}
	})
}

func TestConnectRefused(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		r := newRecorder()
		m, _ := serve(t, r, backend)
		c, err := m.Connect(netip.MustParseAddrPort(addr), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.waitClosed(t, c.ID()); !errors.Is(err, errRefused) {
			t.Fatalf("OnClose error %s, want ECONNREFUSED", describe(err))
		}
		time.Sleep(20 * time.Millisecond)
		if opened, closed := r.counts(c.ID()); opened != 0 || closed != 1 {
			t.Errorf("refused connection: OnOpen %d times, OnClose %d times", opened, closed)
		}
		if s := m.Stats(); s.Closed != 1 || s.Connected != 0 {
			t.Errorf("stats %+v", s)
		}
	})
}

// TestConnectTimeout connects to a listener whose accept queue is full:
// the kernel drops the SYN and the connect never completes on its own.
func TestConnectTimeout(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		addr := fullListener(t)
		r := newRecorder()
		m, _ := serve(t, r, backend)
		start := time.Now()
		c, err := m.Connect(addr, 200*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		err = r.waitClosed(t, c.ID())
		if !errors.Is(err, engine.ErrConnectTimeout) {
			t.Fatalf("OnClose error %s, want ErrConnectTimeout", describe(err))
		}
		if d := time.Since(start); d < 190*time.Millisecond || d > 2*time.Second {
			t.Errorf("timed out after %v", d)
		}
		if s := m.Stats(); s.TimedOut != 1 {
			t.Errorf("timed_out = %d", s.TimedOut)
		}
	})
}

func TestConnectCloseBeforeConnected(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		addr := fullListener(t)
		r := newRecorder()
		m, _ := serve(t, r, backend)
		c, _ := m.Connect(addr, 0)
		c.Close() // closes once connected: never, so
		c.Abort() // the abort ends it
		wantNil(t, r.waitClosed(t, c.ID()))
	})
}

// TestConnectCountsTowardMaxConnections: outbound connections count toward
// max_connections like accepted ones; Connect over the cap fails at the
// call with ErrTooManyConnections, and an inbound one over it is rejected.
func TestConnectCountsTowardMaxConnections(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		srv := newEchoRecorder()
		_, srvAddr := serve(t, srv, backend)
		target := netip.MustParseAddrPort(srvAddr)
		r := newRecorder()
		m, addr := serve(t, r, backend, engine.WithMaxConnections(2))
		in := dial(t, addr)
		r.nextConn(t)
		out, err := m.Connect(target, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r.nextConn(t)
		if _, err := m.Connect(target, 5*time.Second); !errors.Is(err, engine.ErrTooManyConnections) {
			t.Fatalf("Connect over the cap: %s, want ErrTooManyConnections", describe(err))
		}
		if n := m.Connections(); n != 2 {
			t.Fatalf("%d connections after a refused Connect, want 2", n)
		}
		// The outbound one holds a place: an inbound one is rejected.
		if c, err := dialErr(addr); err == nil {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatalf("inbound over the cap: read %d bytes", n)
			}
			c.Close()
		}
		eventually(t, "rejected count", func() bool { return m.Stats().Rejected == 1 })
		in.Close()
		eventually(t, "a place frees", func() bool { return m.Connections() == 1 })
		again, err := m.Connect(target, 5*time.Second)
		if err != nil {
			t.Fatalf("Connect under the cap again: %v", err)
		}
		r.nextConn(t)
		again.Close()
		out.Close()
		wantNil(t, r.waitClosed(t, again.ID()))
		wantNil(t, r.waitClosed(t, out.ID()))
		if s := m.Stats(); s.Connected != 2 || s.Accepted != 1 {
			t.Errorf("stats %+v", s)
		}
	})
}

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
