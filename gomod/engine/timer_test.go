package engine

import (
	"runtime"
	"testing"
	"time"
)

// pollTimers makes a manager whose one worker the test drives (Poll from
// this thread), for looking at its timer heap.
func pollTimers(t *testing.T) (*Manager, *worker) {
	runtime.LockOSThread() // the worker is driven from this thread
	t.Cleanup(runtime.UnlockOSThread)
	m, err := New(nil, WithBackend(Backends()[0]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(time.Second) })
	return m, m.workers[0]
}

// armTimers arms n timers an hour ahead and lets the worker take them.
func armTimers(t *testing.T, m *Manager, n int) []*Timer {
	timers := make([]*Timer, n)
	for i := range timers {
		var err error
		if timers[i], err = m.CallLater(time.Hour, i); err != nil {
			t.Fatal(err)
		}
	}
	for m.workers[0].inbox.pending.Load() > 0 {
		m.Poll(0, 0, 0)
	}
	return timers
}

// TestCancelledTimersDoNotPileUp: timers armed far ahead and cancelled, in
// waves, leave the worker's heap at most about twice the live ones.
func TestCancelledTimersDoNotPileUp(t *testing.T) {
	m, w := pollTimers(t)
	timers := armTimers(t, m, 20_000)
	const live = 500
	for wave := range 5 {
		for _, tm := range timers[live:] {
			tm.Cancel()
		}
		m.Poll(0, 0, 0)
		if got := len(w.apptimers); got > 2*live+64 {
			t.Errorf("wave %d: %d timers on the heap for %d live", wave, got, live)
		}
		copy(timers[live:], armTimers(t, m, len(timers)-live))
	}
	if got := len(w.apptimers); got != len(timers) {
		t.Errorf("%d timers on the heap, want %d", got, len(timers))
	}
}
