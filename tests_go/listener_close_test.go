package engine_test

import (
	"fmt"
	"net"
	"testing"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestListenerCloseServesTheBacklog: connections the kernel completed
// before the listener closed (queued while no worker ran, and the listener
// closed before its worker took it up) are accepted and served, none reset.
func TestListenerCloseServesTheBacklog(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		const n = 40 // more than the accepts posted, fewer than the backlog
		r := newEchoRecorder()
		m := newManager(t, r, backend)
		l := listen(t, m)
		t.Cleanup(func() { closeManager(t, m) })
		clients := make([]net.Conn, n)
		for i := range clients {
			clients[i] = dial(t, l.Addr().String())
			defer clients[i].Close()
		}
		l.Close()
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		<-l.Done()
		echoEach(t, m, clients)
		if _, err := dialErr(l.Addr().String()); err == nil {
			t.Error("a connect after the close succeeded")
		}
	})
}

// TestListenerCloseWhileBusy: the same for a listener its worker serves:
// while the worker is held in a callback, clients connect (one posted
// accept takes one, the rest wait in the backlog) and the listener is
// closed; the accept that completes as it is cancelled, and the backlog,
// are served.
func TestListenerCloseWhileBusy(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		const n = 20
		r := newEchoRecorder()
		hold, held := make(chan struct{}), make(chan struct{})
		first := true
		r.onOpen = func(*engine.Conn) {
			if first {
				first = false
				close(held)
				<-hold
			}
		}
		m := newManager(t, r, backend, engine.WithWorkers(1))
		l := listenAndStart(t, m, engine.WithAccepts(1))
		t.Cleanup(func() { closeManager(t, m) })
		clients := []net.Conn{dial(t, l.Addr().String())}
		defer func() {
			for _, c := range clients {
				c.Close()
			}
		}()
		<-held
		for range n - 1 {
			clients = append(clients, dial(t, l.Addr().String()))
		}
		l.Close()
		close(hold)
		<-l.Done()
		echoEach(t, m, clients)
	})
}

// echoEach checks that each client is served, and that the manager
// accepted them all.
func echoEach(t *testing.T, m *engine.Manager, clients []net.Conn) {
	t.Helper()
	for i, c := range clients {
		if err := roundTrip(c, []byte(fmt.Sprintf("client %d", i))); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	if s := m.Stats(); s.Accepted != uint64(len(clients)) {
		t.Errorf("accepted %d, want %d", s.Accepted, len(clients))
	}
}
