package main

import (
	"runtime"
	"sync/atomic"
	"time"
)

// A thread of Python's that calls into Go keeps a P of the Go runtime
// between its calls: a cgo callback returns to C as if into a system call,
// with the P still its own. Go's system monitor takes back a P whose
// scheduler tick has not moved for 10 ms, idle Ps or not (runtime.retake,
// forcePreemptNS), and the tick moves only when the P runs a goroutine
// from its scheduler, which a callback never does. So a worker's P is
// taken from it every 10 ms; and the P it picks up next has not ticked
// either (the monitor only tracks running Ps), so under load the monitor
// takes that one on its next wake-up too. Each take wakes another thread,
// resets the monitor to waking every 20 µs, and makes the worker's next
// call into Go wait for a P. Measured (50 x 64 B echo, net client, one
// worker pinned to one CPU): 7,000 context switches a second, and the
// monitor's thread at 16 % of that CPU, beside the worker.
//
// A runtime.Gosched every few milliseconds on each polling thread moves
// its P's tick: the monitor then finds nothing to take and sleeps its
// 10 ms. A Gosched from a callback hands the thread's P over and back (a
// few context switches), at most 1/tickEvery times a second per thread.
const tickEvery = 5 * time.Millisecond

// schedTick is one polling thread's last Gosched (a worker's: pollers of
// one worker share it, so at least one of them ticks).
type schedTick struct{ last atomic.Int64 }

// tick is called at each poll, from C: a Gosched once tickEvery passed.
func (t *schedTick) tick() {
	now := time.Now().UnixNano()
	if last := t.last.Load(); now-last < int64(tickEvery) || !t.last.CompareAndSwap(last, now) {
		return
	}
	runtime.Gosched()
}
