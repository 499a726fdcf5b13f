package engine_test

import (
	"errors"
	"testing"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestListenSocket: a listening socket made elsewhere (systemd's, a
// supervisor's) is served, with the listener's options; the manager owns
// it: closed with the listener.
func TestListenSocket(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		s, addr := rawSocket(t, true)
		r := newEchoRecorder()
		m := startManager(t, r, backend)
		l, err := m.ListenSocket(s, engine.WithAccepts(2))
		if err != nil {
			t.Fatal(err)
		}
		if l.Addr() != addr {
			t.Errorf("Addr %v, want %v", l.Addr(), addr)
		}
		for range 3 {
			c := dial(t, addr.String())
			if err := roundTrip(c, pattern(100<<10)); err != nil {
				t.Fatal(err)
			}
			c.Close()
		}
		l.Close()
		<-l.Done()
		if isOpen(s) {
			t.Error("the socket is still open after the listener closed")
		}
	})
}

// TestListenSocketNotListening: a socket that does not listen is an
// OptionError, and closed (the manager owned it from the call on).
func TestListenSocketNotListening(t *testing.T) {
	s, _ := rawSocket(t, false)
	m := startManager(t, echoHandler{}, "auto")
	var oe *engine.OptionError
	if _, err := m.ListenSocket(s); !errors.As(err, &oe) {
		t.Fatalf("err %v, want an OptionError", err)
	}
	if isOpen(s) {
		t.Error("the socket was left open")
	}
}
