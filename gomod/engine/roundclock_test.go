package engine

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// The worker's round clock (w.now) is read when a round starts, before the
// round takes its inbox. A thread preempted (or waiting for a lock) between
// the two takes requests made after its clock: a timeout such a request
// starts must not count from before the request was made. These tests hold
// a worker in that gap, the way poll does it, without the luck of a loaded
// machine.

// stalledRound starts a round of w by hand (its clock read, as poll does),
// then stalls it: what the caller does next happens after w's clock.
func stalledRound(m *Manager, w *worker) {
	w.now = m.clock()
	time.Sleep(20 * time.Millisecond)
}

// TestAdoptCountsFromAfterTheAccept: a connection one worker accepts and
// another adopts counts its accept_timeout from after the accept, not from
// the adopting worker's round start: a silent peer is never reset before
// accept_timeout from its own dial.
func TestAdoptCountsFromAfterTheAccept(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			runtime.LockOSThread() // each worker is driven from one thread
			defer runtime.UnlockOSThread()
			m, err := New(nil, WithWorkers(2), WithBackend(backend), WithAcceptTimeout(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(time.Second)
			l, err := m.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
			if err != nil {
				t.Fatal(err)
			}
			lw, other := l.w, m.workers[1-l.w.idx]
			m.Poll(lw.idx, 0, 0) // the listen applied: accepts posted

			stalledRound(m, other)
			start := m.clock() // the peer dials after other's clock
			peer, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			m.rr.Store(uint32(other.idx)) // the next connection is other's
			for give := time.Now().Add(5 * time.Second); other.inbox.pending.Load() == 0; {
				if time.Now().After(give) {
					t.Fatal("the listener's worker accepted nothing")
				}
				m.Poll(lw.idx, 0, 10*time.Millisecond)
			}
			other.applyInbox() // the rest of other's round: the adoption

			c := other.conns.head
			if c == nil {
				t.Fatal("no connection adopted")
			}
			if c.openedAt < start {
				t.Errorf("accept_timeout counts from %s before the peer dialed", time.Duration(start-c.openedAt))
			}
			if c.deadline < start+int64(time.Hour) {
				t.Errorf("the accept deadline is %s early", time.Duration(start+int64(time.Hour)-c.deadline))
			}
		})
	}
}

// TestConnectCountsFromTheCall: a connect's timeout counts from after
// Connect was called, not from its worker's round start.
func TestConnectCountsFromTheCall(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := netip.MustParseAddrPort(ln.Addr().String())
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			m, err := New(nil, WithWorkers(1), WithBackend(backend))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(time.Second)
			w := m.workers[0]

			stalledRound(m, w)
			start := m.clock()
			c, err := m.Connect(addr, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			w.applyInbox() // the rest of the round: the connect started

			if c.openedAt < start || c.lastActive < start {
				t.Errorf("opened %s, last active %s before Connect was called",
					time.Duration(start-c.openedAt), time.Duration(start-c.lastActive))
			}
			if c.connectBy != 0 && c.connectBy < start+int64(time.Hour) {
				t.Errorf("the connect deadline is %s early", time.Duration(start+int64(time.Hour)-c.connectBy))
			}
		})
	}
}
