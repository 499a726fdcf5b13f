package engine_test

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestAcceptTimeout: connected-but-silent peers are closed with
// ErrAcceptTimeout while a talking client is served.
func TestAcceptTimeout(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		m, addr := serve(t, r, backend, engine.WithAcceptTimeout(150*time.Millisecond))
		var silent []*engine.Conn
		for i := 0; i < 20; i++ {
			dial(t, addr)
			silent = append(silent, r.nextConn(t))
		}
		talker := dial(t, addr)
		tc := r.nextConn(t)
		for i := 0; i < 10; i++ {
			if err := roundTrip(talker, []byte("still here")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(30 * time.Millisecond)
		}
		for _, c := range silent {
			if err := r.waitClosed(t, c.ID()); !errors.Is(err, engine.ErrAcceptTimeout) || !isTimeout(err) {
				t.Fatalf("silent connection closed with %s", describe(err))
			}
		}
		if tc.Closed() {
			t.Fatal("the talking client was closed")
		}
		if s := m.Stats(); s.TimedOut != 20 {
			t.Errorf("timed_out = %d, want 20", s.TimedOut)
		}
	})
}

// TestIdleTimeout: a connection quiet for idle_timeout is closed; one that
// keeps talking is not.
func TestIdleTimeout(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		_, addr := serve(t, r, backend, engine.WithIdleTimeout(150*time.Millisecond))
		quiet := dial(t, addr)
		qc := r.nextConn(t)
		busy := dial(t, addr)
		bc := r.nextConn(t)
		if err := roundTrip(quiet, []byte("once")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for time.Since(start) < 400*time.Millisecond {
			if err := roundTrip(busy, []byte("ping")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := r.waitClosed(t, qc.ID()); !errors.Is(err, engine.ErrIdleTimeout) {
			t.Fatalf("quiet connection closed with %s", describe(err))
		}
		if bc.Closed() {
			t.Fatal("the busy connection was closed")
		}
		if _, err := io.ReadAll(quiet); err != nil && !isReset(err) {
			t.Errorf("quiet peer read: %v", err)
		}
	})
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op)
}

// TestMaxConnections: connections over the cap are closed at once, never
// announced, counted as rejected; service continues once one closes.
func TestMaxConnections(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		m, addr := serve(t, r, backend, engine.WithMaxConnections(3))
		var kept []net.Conn
		for i := 0; i < 3; i++ {
			c := dial(t, addr)
			r.nextConn(t)
			kept = append(kept, c)
		}
		for i := 0; i < 5; i++ {
			// The reset may even beat the end of the client's connect.
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				continue
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(make([]byte, 1))
			c.Close()
			if err == nil {
				t.Fatalf("over the cap: read %d bytes", n)
			}
		}
		eventually(t, "rejected count", func() bool { return m.Stats().Rejected == 5 })
		if s := m.Stats(); s.Accepted != 3 || s.Connections != 3 {
			t.Errorf("stats %+v", s)
		}
		kept[0].Close()
		eventually(t, "a slot frees", func() bool { return m.Stats().Connections == 2 })
		c := dial(t, addr)
		r.nextConn(t)
		if err := roundTrip(c, []byte("served again")); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTimeoutsAfterAStall: a worker whose thread did not run for longer
// than the timeouts (a loaded machine) harvests what arrived meanwhile
// before it judges a connection: a peer that sent in time is not reset
// for silence it did not keep.
func TestTimeoutsAfterAStall(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		const timeout = 200 * time.Millisecond
		m := newManager(t, nil, backend, engine.WithAcceptTimeout(timeout), engine.WithIdleTimeout(timeout))
		defer m.Close(time.Second)
		l := listen(t, m)
		cli := dial(t, l.Addr().String())
		var c *engine.Conn
		for deadline := time.Now().Add(waitBound); c == nil && time.Now().Before(deadline); {
			evs, _ := m.Poll(0, 0, 10*time.Millisecond)
			for _, ev := range evs {
				if ev.Kind == engine.EventAccept {
					c = ev.Conn
				}
			}
		}
		if c == nil {
			t.Fatal("no accept")
		}
		// The stall: nobody polls for three timeouts, while the peer
		// sends a byte every half timeout.
		for i := 0; i < 6; i++ {
			if _, err := cli.Write([]byte{'x'}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(timeout / 2)
		}
		got := 0
		for deadline := time.Now().Add(waitBound); got < 6 && time.Now().Before(deadline); {
			evs, _ := m.Poll(0, 0, 10*time.Millisecond)
			for _, ev := range evs {
				switch ev.Kind {
				case engine.EventRecv:
					got += len(ev.Data)
				case engine.EventClose:
					t.Fatalf("closed with %s after %d bytes: the bytes that came in time were not counted", describe(ev.Err), got)
				}
			}
		}
		if got != 6 {
			t.Fatalf("got %d bytes of 6", got)
		}
	})
}
