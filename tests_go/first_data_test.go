package engine_test

import (
	"errors"
	"net"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestFirstDataAcceptsOnData: a first-data listener does not accept a
// connection whose peer has sent nothing; once the peer sends, the handler
// sees EventAccept, then EventRecv with those bytes, as without the option
// (plaintext and TLS).
func TestFirstDataAcceptsOnData(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		m, addr := serveFirstData(t, r, backend)
		c := dial(t, addr)
		time.Sleep(300 * time.Millisecond)
		if s := m.Stats(); s.Accepted != 0 {
			t.Fatalf("accepted %d connections before any byte came", s.Accepted)
		}
		if err := roundTrip(c, []byte("first bytes")); err != nil {
			t.Fatal(err)
		}
		srv := r.nextConn(t)
		if err := roundTrip(c, pattern(200<<10)); err != nil { // and the rest, as ever
			t.Fatal(err)
		}
		c.Close()
		r.waitClosed(t, srv.ID())
		r.mu.Lock()
		order := slices.Clone(r.order[srv.ID()])
		r.mu.Unlock()
		if len(order) < 2 || order[0] != engine.EventAccept || order[1] != engine.EventRecv {
			t.Errorf("events %v, want EventAccept then EventRecv", order)
		}
		if got := string(r.received(srv.ID())[:11]); got != "first bytes" {
			t.Errorf("the first bytes delivered as %q", got)
		}
	})
}

// serveFirstData serves h on a loopback first-data listener.
func serveFirstData(t *testing.T, h engine.Handler, backend string, opts ...engine.Option) (*engine.Manager, string) {
	t.Helper()
	m := newManager(t, h, backend, opts...)
	l := listenAndStart(t, m, engine.WithFirstData(true))
	t.Cleanup(func() { closeManager(t, m) })
	return m, l.Addr().String()
}

// TestFirstDataTLS: the first bytes of a TLS listener's connection are the
// ClientHello: they go to the handshake.
func TestFirstDataTLS(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		r := newEchoRecorder()
		m := newManager(t, r, backend)
		l := listenAndStart(t, m, engine.WithFirstData(true), engine.WithTLS(p.server("pyiocp.test"), 0))
		t.Cleanup(func() { closeManager(t, m) })
		c := dialTLS(t, l, p.client("pyiocp.test", 0))
		defer c.Close()
		if err := roundTrip(c, []byte("over TLS")); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFirstDataSilentPeer: a peer that connects and never sends is
// dropped after the accept timeout (on Windows unseen: its accept is
// swept; on Linux the kernel holds it that long, then hands it over and
// the accept timeout ends it), while other peers are served.
func TestFirstDataSilentPeer(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		m, addr := serveFirstData(t, r, backend, engine.WithAcceptTimeout(time.Second))
		silent := dial(t, addr)
		defer silent.Close()
		talker := dial(t, addr)
		defer talker.Close()
		if err := roundTrip(talker, []byte("served")); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		silent.SetReadDeadline(time.Now().Add(waitBound))
		n, err := silent.Read(make([]byte, 1))
		var ne net.Error
		if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the silent peer's read: %d, %v; want its end (EOF or a reset)", n, err)
		}
		if took := time.Since(began); took < 500*time.Millisecond {
			t.Errorf("the silent peer was dropped after %v, before the accept timeout", took)
		}
		if err := roundTrip(talker, []byte("still served")); err != nil {
			t.Fatal(err)
		}
		if s := m.Stats(); runtime.GOOS == "windows" && s.Accepted != 1 {
			t.Errorf("accepted %d, want only the talker: the silent peer is never accepted", s.Accepted)
		}
	})
}
