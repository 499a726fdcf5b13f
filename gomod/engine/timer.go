package engine

import (
	"sync/atomic"
	"time"
)

// Timer is a call the application scheduled on a worker: Manager.CallLater
// or Conn.CallLater. When it is due, the worker reports EventTimer with the
// Timer as the event's Value; a connection's timer comes in order with
// that connection's events and never after its EventClose. A connection's
// timer still pending when it closes is reported too, just before the
// EventClose, already Canceled(): there is nothing to run.
//
// Timers live on their worker's heap (no goroutine or runtime timer each).
// Cancel, from any thread, only marks the timer; the worker drops marked
// timers as they come to the top, and sweeps its heap when they are half
// of it, so timers armed and cancelled again and again do not pile up.
type Timer struct {
	w     *worker
	c     *Conn // nil: the manager's
	when  int64 // on the manager's clock
	v     any
	idx   int          // in the worker's heap, -1: not in it
	cidx  int          // in c.timers, while pending
	state atomic.Int32 // timerPending, timerFired, timerCanceled
}

const (
	timerPending int32 = iota
	timerFired
	timerCanceled
)

func (t *Timer) key() int64  { return t.when }
func (t *Timer) place() *int { return &t.idx }

// Value is what CallLater was given.
func (t *Timer) Value() any { return t.v }

// Conn is the connection the timer belongs to, nil for a manager's timer.
func (t *Timer) Conn() *Conn { return t.c }

// When is how long after the manager's start the timer is due.
func (t *Timer) When() time.Duration { return time.Duration(t.when) }

// Cancel stops a pending timer. It reports whether it did: false once the
// timer has fired (its EventTimer is on its way) or was cancelled before.
func (t *Timer) Cancel() bool {
	if !t.state.CompareAndSwap(timerPending, timerCanceled) {
		return false
	}
	t.w.timerCancels.Add(1)
	if c := t.c; c != nil {
		c.mu.Lock()
		c.forgetTimer(t)
		c.mu.Unlock()
	}
	return true
}

// Canceled reports whether Cancel stopped the timer (or its connection
// closed first).
func (t *Timer) Canceled() bool { return t.state.Load() == timerCanceled }

// Now is how long the manager has run: the clock of Timer.When.
func (m *Manager) Now() time.Duration { return time.Duration(m.clock()) }

// CallLater schedules an EventTimer carrying v after d (0 or less: at the
// worker's next round), on one of the workers (round-robin). Safe from any
// thread; ErrManagerClosed once Shutdown was called.
func (m *Manager) CallLater(d time.Duration, v any) (*Timer, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closing.Load() {
		return nil, ErrManagerClosed
	}
	t := &Timer{w: m.pickWorker(), when: m.clock() + int64(max(d, 0)), v: v, idx: -1, cidx: -1}
	if !t.w.enqueue(request{kind: reqTimer, v: t}) {
		return nil, ErrManagerClosed
	}
	return t, nil
}

// CallLater schedules an EventTimer carrying v after d on the connection's
// worker, in order with its events. The timer is cancelled when the
// connection closes. ErrClosed once the connection is closing.
func (c *Conn) CallLater(d time.Duration, v any) (*Timer, error) {
	t := &Timer{w: c.w, c: c, when: c.m.clock() + int64(max(d, 0)), v: v, idx: -1}
	c.mu.Lock()
	if c.req != closeNone || c.freed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	t.cidx = len(c.timers)
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	if !c.w.enqueue(request{kind: reqTimer, v: t}) {
		t.Cancel()
		return nil, ErrManagerClosed
	}
	return t, nil
}

// forgetTimer takes t off c's pending list; c.mu is held.
func (c *Conn) forgetTimer(t *Timer) {
	i := t.cidx
	if i < 0 || i >= len(c.timers) || c.timers[i] != t {
		return
	}
	last := len(c.timers) - 1
	c.timers[i] = c.timers[last]
	c.timers[i].cidx = i
	c.timers[last] = nil
	c.timers = c.timers[:last]
	t.cidx = -1
}

// cancelTimers cancels the pending timers of a connection that is closing
// for good (finalize), so that none comes after its EventClose. Each is
// still reported, cancelled (Canceled() true, nothing to run), before the
// EventClose: whoever armed it learns it is over, and a binding releases
// what its value holds.
func (w *worker) cancelTimers(c *Conn) {
	c.mu.Lock()
	timers := c.timers
	for _, t := range timers {
		t.cidx = -1
	}
	c.timers = nil
	c.mu.Unlock()
	for _, t := range timers {
		if t.state.CompareAndSwap(timerPending, timerCanceled) {
			w.timerCancels.Add(1)
			w.emit(Event{Kind: EventTimer, Conn: c, Value: t})
		}
	}
}

// addTimer puts a new timer on the worker's heap (reqTimer).
func (w *worker) addTimer(t *Timer) {
	if t.state.Load() != timerPending {
		w.timerCancels.Add(-1) // cancelled before it got here
		return
	}
	w.apptimers.push(t)
}

// fireTimers reports the timers that are due, and drops cancelled ones.
func (w *worker) fireTimers() {
	w.sweepTimers()
	for {
		t, ok := w.apptimers.peek()
		if !ok || (t.when > w.now && t.state.Load() == timerPending) {
			return
		}
		w.apptimers.remove(t)
		if !t.state.CompareAndSwap(timerPending, timerFired) {
			w.timerCancels.Add(-1)
			continue
		}
		if c := t.c; c != nil {
			c.mu.Lock()
			c.forgetTimer(t)
			c.mu.Unlock()
		}
		w.emit(Event{Kind: EventTimer, Conn: t.c, Value: t})
	}
}

// sweepTimers rebuilds the heap without its cancelled timers once they are
// at least half of it.
func (w *worker) sweepTimers() {
	n := w.timerCancels.Load()
	if n < 64 || n < int64(len(w.apptimers))/2 {
		return
	}
	dropped := int64(0)
	w.apptimers.filter(func(t *Timer) bool {
		if t.state.Load() == timerCanceled {
			dropped++
			return false
		}
		return true
	})
	w.timerCancels.Add(-dropped)
}

// nextTimer is when the earliest pending timer is due, 0: none.
func (w *worker) nextTimer() int64 {
	if t, ok := w.apptimers.peek(); ok {
		return t.when
	}
	return 0
}

// PendingTimers calls f with each timer still pending on the manager's
// workers, marking it cancelled, once every worker has quit (a binding
// releases what the values hold). False if a worker still runs.
func (m *Manager) PendingTimers(f func(*Timer)) bool {
	held := 0
	defer func() {
		for _, w := range m.workers[:held] {
			w.unlock()
		}
	}()
	// Every worker first: none is visited unless all have quit.
	for _, w := range m.workers {
		if !w.lock(0) {
			return false
		}
		held++
		if !w.quit {
			return false
		}
	}
	for _, w := range m.workers {
		for _, t := range w.apptimers {
			if t.state.CompareAndSwap(timerPending, timerCanceled) {
				f(t)
			}
		}
		clear(w.apptimers)
		w.apptimers = w.apptimers[:0]
	}
	return true
}
