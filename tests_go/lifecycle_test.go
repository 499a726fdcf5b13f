package engine_test

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

func TestNoLeakAfter1000Cycles(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		m, addr := serve(t, r, backend, engine.WithWorkers(2))
		for i := 0; i < 1000; i++ {
			c := dial(t, addr)
			if i%2 == 0 {
				if err := roundTrip(c, []byte("cycle")); err != nil {
					t.Fatal(err)
				}
			}
			if i%3 == 0 {
				resetClose(t, c)
			} else {
				c.Close()
			}
		}
		// Stats count a close when the connection is freed, just before
		// its OnClose runs: wait for the handler's count.
		eventually(t, "every OnClose", func() bool { return r.closedCount() == 1000 })
		if s := m.Stats(); s.Accepted != 1000 || s.Connections != 0 {
			t.Errorf("stats %+v", s)
		}
		r.checkExactlyOnce(t)
	})
}

func TestNoLeakFiftyManagers(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		for i := 0; i < 50; i++ {
			r := newRecorder()
			m := newManager(t, r, backend, engine.WithWorkers(1+i%3))
			l := listenAndStart(t, m)
			c := dial(t, l.Addr().String())
			r.nextConn(t)
			if i%2 == 0 {
				m.Connect(l.Addr(), time.Second)
			}
			m.Close(time.Second)
			c.Close()
			r.checkExactlyOnce(t)
			select {
			case <-l.Done():
			default:
				t.Fatal("listener still open after Close")
			}
		}
	})
}

// TestIDsNeverReused: ids grow and are never handed out twice, and a
// reference to a closed connection finds nothing even once its slot holds
// another connection.
func TestIDsNeverReused(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		m, addr := serve(t, r, backend)
		seen := map[uint64]bool{}
		var last uint64
		var old *engine.Conn
		for i := 0; i < 100; i++ {
			c := dial(t, addr)
			srv := r.nextConn(t)
			if seen[srv.ID()] || srv.ID() <= last {
				t.Fatalf("id %d after %d", srv.ID(), last)
			}
			seen[srv.ID()], last = true, srv.ID()
			if m.Get(srv.ID()) != srv || m.Lookup(srv.Slot(), srv.ID()) != srv {
				t.Fatal("lookup of an open connection failed")
			}
			if old != nil && old.Slot() == srv.Slot() && m.Lookup(old.Slot(), old.ID()) != nil {
				t.Fatal("a stale reference reached the slot's new connection")
			}
			c.Close()
			r.waitClosed(t, srv.ID())
			old = srv
		}
		eventually(t, "slot freed", func() bool { return m.Get(old.ID()) == nil })
		if m.Lookup(old.Slot(), old.ID()) != nil {
			t.Fatal("lookup of a closed connection succeeded")
		}
	})
}

func TestBadOptions(t *testing.T) {
	bad := []engine.Option{
		engine.WithWorkers(0), engine.WithWorkers(1000), engine.WithBackend("kqueue"),
		engine.WithRecvBufferLimit(0), engine.WithSendBufferLimit(-1), engine.WithSendLowWatermark(-1),
		engine.WithIdleTimeout(-time.Second), engine.WithAcceptTimeout(-1), engine.WithMaxConnections(-1),
	}
	for _, o := range bad {
		var oe *engine.OptionError
		if _, err := engine.New(nil, o); !errors.As(err, &oe) {
			t.Errorf("New with a bad option: %v", err)
		}
	}
	var oe *engine.OptionError
	if _, err := engine.New(nil, engine.WithSendBufferLimit(100), engine.WithSendLowWatermark(100)); !errors.As(err, &oe) {
		t.Errorf("low watermark at the limit: %v", err)
	}
	checkLeaks(t)
	m, _ := engine.New(nil)
	defer m.Close(time.Second)
	if _, err := m.Listen(loopback, engine.WithAccepts(0)); !errors.As(err, &oe) {
		t.Errorf("accepts=0: %v", err)
	}
	if _, err := m.Listen(loopback, engine.WithBacklog(0)); !errors.As(err, &oe) {
		t.Errorf("backlog=0: %v", err)
	}
	if _, err := m.Listen(netip.AddrPort{}); !errors.As(err, &oe) {
		t.Errorf("zero address: %v", err)
	}
	if _, err := m.Connect(netip.MustParseAddrPort("127.0.0.1:0"), 0); !errors.As(err, &oe) {
		t.Errorf("connect to port 0: %v", err)
	}
	if _, err := m.Connect(netip.MustParseAddrPort("127.0.0.1:9"), -time.Second); !errors.As(err, &oe) {
		t.Errorf("negative timeout: %v", err)
	}
	l, err := m.Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Listen(l.Addr()); !errors.Is(err, errAddrInUse) {
		t.Errorf("port in use: %v", err)
	}
	if err := m.Start(); !errors.Is(err, engine.ErrNoHandler) {
		t.Errorf("Start without a handler: %v", err)
	}
}

func TestClosedManagerRefusesWork(t *testing.T) {
	checkLeaks(t)
	m, _ := engine.New(newRecorder())
	m.Close(time.Second)
	m.Close(time.Second) // idempotent
	if _, err := m.Listen(loopback); !errors.Is(err, engine.ErrManagerClosed) {
		t.Errorf("listen: %v", err)
	}
	if _, err := m.Connect(netip.MustParseAddrPort("127.0.0.1:9"), 0); !errors.Is(err, engine.ErrManagerClosed) {
		t.Errorf("connect: %v", err)
	}
	if err := m.Start(); !errors.Is(err, engine.ErrManagerClosed) {
		t.Errorf("start: %v", err)
	}
	if evs, quit := m.Poll(0, 1, time.Second); len(evs) != 0 || !quit {
		t.Errorf("poll after close: %v %v", evs, quit)
	}
}

func TestListenerClose(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		m := newManager(t, r, backend)
		defer closeManager(t, m)
		m.Start()
		l := listen(t, m)
		c := dial(t, l.Addr().String())
		srv := r.nextConn(t)
		l.Close()
		l.Close()
		select {
		case <-l.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("listener never closed")
		}
		if _, err := dialErr(l.Addr().String()); err == nil {
			t.Error("connect to a closed listener succeeded")
		}
		if err := roundTripThrough(srv, c); err != nil {
			t.Errorf("accepted connection stopped working: %v", err)
		}
		if s := m.Stats(); s.Listeners != 0 {
			t.Errorf("listeners = %d", s.Listeners)
		}
	})
}

// TestListenerWaitingUntilAWorkerRuns: before any worker runs, the kernel
// completes connections into the listener's backlog and nobody takes them;
// Waiting says so, and stops saying so once a worker has the listener.
func TestListenerWaitingUntilAWorkerRuns(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		m := newManager(t, r, backend)
		defer closeManager(t, m)
		l := listen(t, m)
		if l.Waiting() {
			t.Fatal("waiting before anyone connected")
		}
		c := dial(t, l.Addr().String())
		defer c.Close()
		eventually(t, "a connection waiting", l.Waiting)
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		r.nextConn(t)
		if l.Waiting() {
			t.Error("waiting after a worker took the connection")
		}
		c2 := dial(t, l.Addr().String())
		defer c2.Close()
		r.nextConn(t)
		if l.Waiting() {
			t.Error("waiting while a worker runs the listener")
		}
	})
}
