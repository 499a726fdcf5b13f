package engine_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// timerRecorder is a recorder that also records its due timers: when each
// came (on the manager's clock, as Timer.When is) and, for a connection's,
// in that connection's order of events.
type timerRecorder struct {
	*recorder
	m     *engine.Manager
	tmu   sync.Mutex
	fired []firedTimer
}

type firedTimer struct {
	t  *engine.Timer
	at time.Duration
}

func (r *timerRecorder) OnTimer(t *engine.Timer) {
	if c := t.Conn(); c != nil {
		r.enter(c, engine.EventTimer)
		defer r.leave(c)
	}
	r.tmu.Lock()
	r.fired = append(r.fired, firedTimer{t, r.m.Now()})
	r.tmu.Unlock()
}

func (r *timerRecorder) count() int {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	return len(r.fired)
}

func (r *timerRecorder) firedList() []firedTimer {
	r.tmu.Lock()
	defer r.tmu.Unlock()
	return slices.Clone(r.fired)
}

func serveTimers(t *testing.T, backend string, opts ...engine.Option) (*timerRecorder, string) {
	r := &timerRecorder{recorder: newRecorder()}
	m, addr := serve(t, r, backend, opts...)
	r.m = m
	return r, addr
}

// TestCallLaterOrderAndLateness: timers armed from several goroutines fire
// once each, never before they are due, and each worker fires its own in
// the order they are due.
func TestCallLaterOrderAndLateness(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r, _ := serveTimers(t, backend, engine.WithWorkers(2))
		const n = 400
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range n / 4 {
					d := time.Duration((g*37+i*11)%200) * time.Millisecond
					if _, err := r.m.CallLater(d, g*1000+i); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		eventually(t, "every timer fired", func() bool { return r.count() == n })
		seen := map[int]bool{}
		var worst time.Duration
		for _, f := range r.firedList() {
			if f.at < f.t.When() {
				t.Errorf("timer %v fired %v early", f.t.Value(), f.t.When()-f.at)
			}
			worst = max(worst, f.at-f.t.When())
			if seen[f.t.Value().(int)] {
				t.Errorf("timer %v fired twice", f.t.Value())
			}
			seen[f.t.Value().(int)] = true
		}
		t.Logf("worst lateness %v", worst)
		time.Sleep(50 * time.Millisecond)
		if r.count() != n {
			t.Errorf("%d timers fired, want %d", r.count(), n)
		}
	})
}

// TestTimerCancel: a cancelled timer never fires; Cancel reports whether it
// stopped the timer, from any goroutine, once.
func TestTimerCancel(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r, _ := serveTimers(t, backend)
		late, err := r.m.CallLater(time.Hour, "late")
		if err != nil {
			t.Fatal(err)
		}
		soon, _ := r.m.CallLater(0, "soon")
		if !late.Cancel() || late.Cancel() || !late.Canceled() {
			t.Error("Cancel of a pending timer: want true once, then false")
		}
		eventually(t, "the timer not cancelled", func() bool { return r.count() == 1 })
		if soon.Cancel() || soon.Canceled() {
			t.Error("Cancel of a timer that fired: want false")
		}
		time.Sleep(150 * time.Millisecond)
		if f := r.firedList(); len(f) != 1 || f[0].t.Value() != "soon" {
			t.Errorf("fired %v, want only the timer not cancelled", f)
		}
	})
}

// TestConnCallLater: a connection's timer comes in order with its events,
// from its worker, never during another of its callbacks; the timers still
// pending when it closes are cancelled, none comes after its close, and a
// closed connection takes no new timer.
func TestConnCallLater(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r, addr := serveTimers(t, backend, engine.WithWorkers(2))
		cli := dial(t, addr)
		c := r.nextConn(t)
		soon, err := c.CallLater(10*time.Millisecond, "soon")
		if err != nil {
			t.Fatal(err)
		}
		never, _ := c.CallLater(time.Hour, "never")
		eventually(t, "the connection's timer", func() bool { return r.count() == 1 })
		if f := r.firedList(); f[0].t != soon || soon.Conn() != c {
			t.Errorf("fired %v, want the connection's first timer", f[0].t.Value())
		}
		cli.Close()
		r.waitClosed(t, c.ID())
		if !never.Canceled() {
			t.Error("a timer pending at close was not cancelled")
		}
		if _, err := c.CallLater(0, "after"); !errors.Is(err, engine.ErrClosed) {
			t.Errorf("CallLater on a closed connection: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
		r.mu.Lock()
		order := slices.Clone(r.order[c.ID()])
		overlap := r.overlap
		r.mu.Unlock()
		want := []engine.EventKind{engine.EventAccept, engine.EventTimer, engine.EventClose}
		if !slices.Equal(order, want) || overlap != 0 {
			t.Errorf("events %v (overlapping callbacks %d), want %v", order, overlap, want)
		}
	})
}

// TestCallLaterOnClosedManager: no timer once the manager is closing; a
// timer still pending when it closes never fires.
func TestCallLaterOnClosedManager(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r, _ := serveTimers(t, backend, engine.WithWorkers(2))
		var pending []*engine.Timer
		for i := range 4 { // on both workers
			p, _ := r.m.CallLater(time.Hour, i)
			pending = append(pending, p)
		}
		closeManager(t, r.m)
		if _, err := r.m.CallLater(0, "x"); !errors.Is(err, engine.ErrManagerClosed) {
			t.Errorf("CallLater after close: %v", err)
		}
		var left []any
		if !r.m.PendingTimers(func(t *engine.Timer) { left = append(left, t.Value()) }) {
			t.Fatal("PendingTimers: a worker still runs after Close")
		}
		slices.SortFunc(left, func(a, b any) int { return a.(int) - b.(int) })
		if !slices.Equal(left, []any{0, 1, 2, 3}) || r.count() != 0 {
			t.Errorf("pending after close %v, fired %d", left, r.count())
		}
		for _, p := range pending {
			if !p.Canceled() {
				t.Error("a timer pending at close is not cancelled")
			}
		}
		if r.m.PendingTimers(func(*engine.Timer) { t.Error("a timer handed out twice") }) != true {
			t.Error("PendingTimers: false once every worker has quit")
		}
	})
}

// TestTimerFunc: without OnTimer, a timer whose value is a func() is called.
func TestTimerFunc(t *testing.T) {
	m, _ := serve(t, newRecorder(), engine.Backends()[0])
	done := make(chan struct{})
	if _, err := m.CallLater(time.Millisecond, func() { close(done) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(waitBound):
		t.Fatal("the func timer was not called")
	}
}
