package main

/*
#include "glue.h"
*/
import "C"

import (
	"unsafe"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// A timer's value is the PyObject * of its pyiocp.Timer, carrying the one
// reference the engine holds: handed back exactly once, by the timer's
// event, by pyiocpCancelTimer, or by pyiocpTakeTimers once the workers
// have quit. The entry maps each pending one to its engine.Timer, for
// Timer.cancel().

// EV_TIMER's flags.
const (
	timerOfConn    = C.PYIOCP_TIMER_CONN
	timerCancelled = C.PYIOCP_TIMER_CANCELLED
)

// pyiocpCallLater schedules value after delayNs: on the connection (slot,
// id) when onConn is set, else on the manager. On success the engine owns
// the reference the caller gave.
//
//export pyiocpCallLater
func pyiocpCallLater(h C.int64_t, onConn C.int, slot C.uint32_t, id C.uint64_t, delayNs C.int64_t, value C.uint64_t) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return C.PYIOCP_E_MANAGER_CLOSED
	}
	// Held across the scheduling: the timer's event, which takes it out of
	// the map, cannot be made before it is in.
	ent.tmu.Lock()
	defer ent.tmu.Unlock()
	var t *engine.Timer
	var err error
	if onConn != 0 {
		c := conn(h, slot, id)
		if c == nil {
			return C.PYIOCP_E_CLOSED
		}
		t, err = c.CallLater(duration(delayNs), uint64(value))
	} else {
		t, err = ent.m.CallLater(duration(delayNs), uint64(value))
	}
	if err != nil {
		return setErr(nil, err)
	}
	if ent.timers == nil {
		ent.timers = make(map[uint64]*engine.Timer)
	}
	ent.timers[uint64(value)] = t
	return C.PYIOCP_OK
}

// pyiocpCancelTimer cancels the timer of value: 1 if it was pending (the
// engine's reference is the caller's again), 0 if its event is on its way
// or it is settled.
//
//export pyiocpCancelTimer
func pyiocpCancelTimer(h C.int64_t, value C.uint64_t) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return 0
	}
	ent.tmu.Lock()
	defer ent.tmu.Unlock()
	t := ent.timers[uint64(value)]
	if t == nil || !t.Cancel() {
		return 0
	}
	delete(ent.timers, uint64(value))
	return 1
}

// pyiocpTakeTimers writes into out (room for n) values of timers still
// pending once every worker has quit, and returns how many; 0 when none is
// left, or while a worker still runs.
//
//export pyiocpTakeTimers
func pyiocpTakeTimers(h C.int64_t, out *C.uint64_t, n C.int) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return 0
	}
	ent.tmu.Lock()
	defer ent.tmu.Unlock()
	if !ent.timersTaken {
		if !ent.m.PendingTimers(func(t *engine.Timer) { ent.leftTimers = append(ent.leftTimers, t.Value().(uint64)) }) {
			return 0
		}
		ent.timersTaken = true
		clear(ent.timers)
	}
	k := copy(unsafe.Slice((*uint64)(unsafe.Pointer(out)), int(n)), ent.leftTimers)
	ent.leftTimers = ent.leftTimers[k:]
	return C.int(k)
}

// timerDone takes a fired timer out of the map and returns its value.
func (ent *entry) timerDone(t *engine.Timer) uint64 {
	v := t.Value().(uint64)
	ent.tmu.Lock()
	delete(ent.timers, v)
	ent.tmu.Unlock()
	return v
}
