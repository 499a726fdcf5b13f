package engine_test

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// parkLoop drives worker 0 of m as an event loop does: PollPark rounds,
// back to back while the worker has more, else a poll(2) of WaitFD until
// it is readable or the worker's deadline passes.
type parkLoop struct {
	t  *testing.T
	m  *engine.Manager
	fd int
}

// round runs one PollPark round, handing its events to f.
func (p *parkLoop) round(f func(engine.Event)) time.Duration {
	evs, quit, park := p.m.PollPark(0, 1, 64)
	for _, ev := range evs {
		f(ev)
	}
	p.m.EndPoll(0)
	if quit {
		p.t.Fatal("the worker quit")
	}
	return park
}

// settle runs rounds until the worker parks; its park.
func (p *parkLoop) settle(f func(engine.Event)) time.Duration {
	for i := 0; ; i++ {
		if park := p.round(f); park != 0 {
			return park
		}
		if i > 1000 {
			p.t.Fatal("the worker never parks")
		}
	}
}

// readable polls WaitFD for up to d.
func (p *parkLoop) readable(d time.Duration) bool {
	fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(d/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			p.t.Fatal(err)
		}
		return n == 1
	}
}

// until drives the worker until done() or waitBound passes.
func (p *parkLoop) until(what string, done func() bool, f func(engine.Event)) {
	deadline := time.Now().Add(waitBound)
	for !done() {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not within %v", what, waitBound)
		}
		if park := p.settle(f); park < 0 || park > 100*time.Millisecond {
			p.readable(100 * time.Millisecond)
		} else {
			p.readable(park)
		}
	}
}

// TestParkedWorkerWakesThroughWaitFD: a worker driven by PollPark parks
// when it has nothing to do, its descriptor then quiet (a loop watching it
// sleeps), and every way work reaches it makes the descriptor readable:
// a request from another thread, a connection, bytes, a timer's deadline
// (which PollPark reports instead).
func TestParkedWorkerWakesThroughWaitFD(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		runtime.LockOSThread() // one thread drives the worker, as a loop's does
		defer runtime.UnlockOSThread()
		m := newManager(t, nil, backend)
		defer closeManager(t, m)
		fd, ok := m.WaitFD(0)
		if !ok {
			t.Fatalf("%s: no descriptor to wait on", backend)
		}
		p := &parkLoop{t: t, m: m, fd: fd}
		l := listen(t, m)
		none := func(ev engine.Event) { t.Errorf("unexpected %v", ev.Kind) }
		if park := p.settle(none); park >= 0 {
			t.Fatalf("idle worker parked with a deadline in %v", park)
		}
		if p.readable(0) {
			t.Fatal("parked with nothing to do, yet its descriptor is readable")
		}

		go m.Post("from another thread")
		if !p.readable(waitBound) {
			t.Fatal("a post to a parked worker left its descriptor quiet")
		}
		var posted any
		p.until("the post", func() bool { return posted != nil }, func(ev engine.Event) {
			if ev.Kind != engine.EventPost {
				t.Errorf("unexpected %v", ev.Kind)
			}
			posted = ev.Value
		})
		if posted != "from another thread" {
			t.Errorf("posted %v", posted)
		}

		cli := dial(t, l.Addr().String())
		if _, err := cli.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		got := ""
		p.until("the accept and the bytes", func() bool { return got == "ping" }, func(ev engine.Event) {
			if ev.Kind == engine.EventRecv {
				got += string(ev.Data)
				ev.Conn.Send([]byte("pong")) // written by the next round: no wake of its own
			}
		})
		answer := make([]byte, 4)
		done := make(chan error, 1)
		go func() {
			_, err := cli.Read(answer)
			done <- err
		}()
		p.until("the answer", func() bool { return len(done) > 0 }, none)
		if err := <-done; err != nil || string(answer) != "pong" {
			t.Fatalf("client read %q, %v", answer, err)
		}

		if _, err := m.CallLater(50*time.Millisecond, "due"); err != nil {
			t.Fatal(err)
		}
		park := p.settle(none)
		if park <= 0 || park > 50*time.Millisecond {
			t.Fatalf("parked with a timer due in 50 ms: park %v", park)
		}
		var fired any
		p.until("the timer", func() bool { return fired != nil }, func(ev engine.Event) {
			if ev.Kind == engine.EventTimer {
				fired = ev.Value
			}
		})
		cli.Close()
		p.until("the close", func() bool { return m.Stats().Connections == 0 }, func(ev engine.Event) {
			if ev.Kind == engine.EventEOF {
				ev.Conn.Close()
			}
		})
	})
}
