package engine_test

import (
	"io"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestPollMode drives a handler-less manager with Poll, the
// GetQueuedCompletionStatus loop: accept, recv, send, eof, close, post.
func TestPollMode(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := newManager(t, nil, backend)
		l := listen(t, m)
		// Idle: no events for 50 ms. The first round may end early, woken
		// to apply the Listen; an idle one must not.
		start := time.Now()
		rounds := 0
		for time.Since(start) < 50*time.Millisecond {
			left := 50*time.Millisecond - time.Since(start)
			evs, quit := m.Poll(0, 64, left)
			if len(evs) != 0 || quit {
				t.Fatalf("idle poll: %v %v", evs, quit)
			}
			rounds++
		}
		if rounds > 3 {
			t.Errorf("idle Poll(50ms) took %d rounds: it returns early without being woken", rounds)
		}
		cli := dial(t, l.Addr().String())
		cli.Write([]byte("ping"))
		cli.(interface{ CloseWrite() error }).CloseWrite()
		m.Post("payload")
		var kinds []engine.EventKind
		var conn *engine.Conn
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && (len(kinds) == 0 || kinds[len(kinds)-1] != engine.EventClose) {
			evs, _ := m.Poll(0, 64, 100*time.Millisecond)
			for _, ev := range evs {
				kinds = append(kinds, ev.Kind)
				switch ev.Kind {
				case engine.EventAccept:
					conn = ev.Conn
				case engine.EventRecv:
					if string(ev.Data) != "ping" {
						t.Errorf("recv %q", ev.Data)
					}
					ev.Conn.Send([]byte("pong"))
				case engine.EventEOF:
					ev.Conn.Close()
				case engine.EventPost:
					if ev.Value != "payload" {
						t.Errorf("post value %v", ev.Value)
					}
				}
			}
		}
		want := map[engine.EventKind]bool{engine.EventAccept: true, engine.EventRecv: true, engine.EventSend: true,
			engine.EventEOF: true, engine.EventClose: true, engine.EventPost: true}
		for _, k := range kinds {
			delete(want, k)
		}
		if len(want) != 0 || conn == nil {
			t.Fatalf("events %v; missing %v", kinds, want)
		}
		if got, _ := io.ReadAll(cli); string(got) != "pong" {
			t.Errorf("client got %q", got)
		}
		if err := m.Close(time.Second); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPollMax: the max argument caps a batch; the rest comes next time.
func TestPollMax(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := newManager(t, nil, backend)
		for i := 0; i < 10; i++ {
			m.Post(i)
		}
		var got []any
		for len(got) < 10 {
			evs, _ := m.Poll(0, 3, time.Second)
			if len(evs) > 3 || len(evs) == 0 {
				t.Fatalf("batch of %d with max 3", len(evs))
			}
			for _, ev := range evs {
				got = append(got, ev.Value)
			}
		}
		for i, v := range got {
			if v != i {
				t.Fatalf("posts out of order: %v", got)
			}
		}
		m.Close(time.Second)
	})
}
