package engine_test

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// acquire is what a binding's acquire does: an idle connection, or a new
// one dialled and connected, waiting while every slot is busy.
func acquire(p *engine.Pool, m *engine.Manager, addr netip.AddrPort) (*engine.Conn, error) {
	deadline := time.Now().Add(waitBound)
	for {
		v := p.Version()
		c, dial, err := p.Take()
		switch {
		case err != nil:
			return nil, err
		case c != nil:
			return c, nil
		case dial:
			c, err := m.Connect(addr, time.Second)
			p.Adopt(c)
			if err != nil {
				return nil, err
			}
			for {
				v := p.Version()
				if done, err := p.Ready(c); done {
					if err != nil {
						p.Forget(c)
						return nil, err
					}
					return c, nil
				}
				if !p.Wait(v, deadline) {
					return nil, errors.New("connect not over in time")
				}
			}
		}
		if !p.Wait(v, deadline) {
			return nil, errors.New("no connection freed in time")
		}
	}
}

// acquireN takes n connections from p, failing the test on an error.
func acquireN(t *testing.T, p *engine.Pool, m *engine.Manager, addr netip.AddrPort, n int) []*engine.Conn {
	t.Helper()
	var got []*engine.Conn
	for range n {
		c, err := acquire(p, m, addr)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, c)
	}
	return got
}

func poolSetup(t *testing.T, backend string, size int, idle time.Duration) (*engine.Pool, *engine.Manager, netip.AddrPort, *recorder) {
	srv := newEchoRecorder()
	_, addr := serve(t, srv, backend)
	cli := newRecorder()
	m := startManager(t, cli, backend)
	p, err := m.NewPool(size, idle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p, m, netip.MustParseAddrPort(addr), srv
}

func TestPoolReusesConnections(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p, m, addr, _ := poolSetup(t, backend, 2, 0)
		a, err := acquire(p, m, addr)
		if err != nil {
			t.Fatal(err)
		}
		p.Release(a)
		eventually(t, "idle", func() bool { return p.Stats().Idle == 1 })
		b, err := acquire(p, m, addr)
		if err != nil || b != a {
			t.Fatalf("took %v (%v), want the idle one back", b, err)
		}
		if s := p.Stats(); s.Dials != 1 || s.Open != 1 || s.Idle != 0 {
			t.Fatalf("%+v", s)
		}
		p.Release(b)
	})
}

// The peer closing idle connections takes them out of the pool at once;
// the next acquire dials anew.
func TestPoolDropsConnectionsThePeerCloses(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p, m, addr, srv := poolSetup(t, backend, 3, 0)
		got := acquireN(t, p, m, addr, 3)
		for _, c := range got {
			p.Release(c)
		}
		for range 3 {
			srv.nextConn(t).Close()
		}
		eventually(t, "the pool empty", func() bool { s := p.Stats(); return s.Open == 0 && s.Idle == 0 })
		c, err := acquire(p, m, addr)
		if err != nil || c.Closed() {
			t.Fatalf("%v %v", c, err)
		}
		p.Release(c)
	})
}

// 32 goroutines share a pool of 4: never more than 4 open, each
// connection used by one goroutine at a time. First 4 are held, so that
// the pool surely fills and the fifth surely waits.
func TestPoolSizeUnderContention(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p, m, addr, _ := poolSetup(t, backend, 4, 0)
		held := acquireN(t, p, m, addr, 4)
		fifth := make(chan *engine.Conn)
		go func() {
			c, _ := acquire(p, m, addr)
			fifth <- c
		}()
		eventually(t, "the fifth waits", func() bool { return p.Stats().Waits >= 1 })
		p.Release(held[0])
		if c := <-fifth; c != held[0] {
			t.Fatalf("the fifth got %v, want the one released", c)
		}
		for _, c := range held {
			p.Release(c)
		}
		var inUse sync.Map
		var overlap, fails atomic.Int32
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for range 20 {
					c, err := acquire(p, m, addr)
					if err != nil {
						fails.Add(1)
						return
					}
					if _, busy := inUse.LoadOrStore(c, true); busy {
						overlap.Add(1)
					}
					if s := p.Stats(); s.Open > 4 {
						overlap.Add(1)
					}
					inUse.Delete(c)
					p.Release(c)
				}
			})
		}
		wg.Wait()
		if s := p.Stats(); fails.Load() != 0 || overlap.Load() != 0 || s.Dials != 4 || s.Waits == 0 {
			t.Fatalf("fails %d, overlaps %d, %+v", fails.Load(), overlap.Load(), s)
		}
	})
}

func TestPoolIdleTimeoutAndClose(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p, m, addr, _ := poolSetup(t, backend, 2, 50*time.Millisecond)
		a, _ := acquire(p, m, addr)
		b, _ := acquire(p, m, addr)
		p.Release(a)
		eventually(t, "the idle one closed", func() bool { return a.Closed() && p.Stats().Open == 1 })
		p.Close()
		if _, _, err := p.Take(); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("Take after Close: %v", err)
		}
		p.Release(b) // closed on release
		eventually(t, "the busy one closed", func() bool { return b.Closed() && p.Stats().Open == 0 })
	})
}

func TestPoolReportsAFailedConnect(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p, m, _, _ := poolSetup(t, backend, 1, 0)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		refused := netip.MustParseAddrPort(ln.Addr().String())
		ln.Close()
		if _, err := acquire(p, m, refused); err == nil {
			t.Fatal("a connect to nothing succeeded")
		}
		if s := p.Stats(); s.Open != 0 {
			t.Fatalf("the failed dial is still counted: %+v", s)
		}
	})
}
