package main

/*
#include "glue.h"
*/
import "C"

import (
	"time"
	"unsafe"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// A ConnectionPool is an engine.Pool by handle; its connections are named
// by id, as the pool knows them (engine.Pool.Lookup).

//export pyiocpPoolNew
func pyiocpPoolNew(h C.int64_t, size C.int64_t, idleNs C.int64_t, ph *C.int64_t, e *C.pyiocp_error) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return setErr(e, engine.ErrManagerClosed)
	}
	p, err := ent.m.NewPool(int(size), duration(idleNs))
	if err != nil {
		return setErr(e, err)
	}
	ent.lmu.Lock()
	defer ent.lmu.Unlock()
	if ent.pools == nil {
		ent.pools = map[int64]*engine.Pool{}
	}
	ent.nextL++
	ent.pools[ent.nextL] = p
	*ph = C.int64_t(ent.nextL)
	return C.PYIOCP_OK
}

func pool(h, ph C.int64_t) *engine.Pool {
	ent := lookup(int64(h))
	if ent == nil {
		return nil
	}
	ent.lmu.Lock()
	defer ent.lmu.Unlock()
	return ent.pools[int64(ph)]
}

// pyiocpPoolTake: *found with (*slot, *id) an idle connection, or *dial:
// a slot to dial; neither: wait (*version is what to wait from).
//
//export pyiocpPoolTake
func pyiocpPoolTake(h, ph C.int64_t, found, dial *C.int, slot *C.uint32_t, id, version *C.uint64_t,
	e *C.pyiocp_error) C.int {
	*found, *dial = 0, 0
	p := pool(h, ph)
	if p == nil {
		return setErr(e, engine.ErrClosed)
	}
	*version = C.uint64_t(p.Version())
	c, d, err := p.Take()
	if err != nil {
		return setErr(e, err)
	}
	if c != nil {
		*found, *slot, *id = 1, C.uint32_t(c.Slot()), C.uint64_t(c.ID())
	}
	if d {
		*dial = 1
	}
	return C.PYIOCP_OK
}

// pyiocpPoolAdopt gives the pool the connection dialled on the slot Take
// reserved (ok 0: the dial failed, the slot is free again).
//
//export pyiocpPoolAdopt
func pyiocpPoolAdopt(h, ph C.int64_t, ok C.int, slot C.uint32_t, id C.uint64_t) {
	p := pool(h, ph)
	if p == nil {
		return
	}
	var c *engine.Conn
	if ok != 0 {
		if c = conn(h, slot, id); c == nil {
			// Gone already: a pool must still hear of it, to free the slot.
			p.Adopt(nil)
			return
		}
	}
	p.Adopt(c)
}

// pyiocpPoolReady: *done once connection id's connect is over; the code is
// why it failed (then its record is dropped).
//
//export pyiocpPoolReady
func pyiocpPoolReady(h, ph C.int64_t, id C.uint64_t, done *C.int, version *C.uint64_t, e *C.pyiocp_error) C.int {
	*done = 1
	p := pool(h, ph)
	if p == nil {
		return setErr(e, engine.ErrClosed)
	}
	*version = C.uint64_t(p.Version())
	c := p.Lookup(uint64(id))
	if c == nil {
		return setErr(e, engine.ErrClosed)
	}
	ok, err := p.Ready(c)
	if !ok {
		*done = 0
		return C.PYIOCP_OK
	}
	if err != nil {
		p.Forget(c)
	}
	return setErr(e, err)
}

// pyiocpPoolWait blocks (the caller released the GIL) until the pool
// changed since version, or timeoutNs passed (negative: no limit): 1, or 0.
//
//export pyiocpPoolWait
func pyiocpPoolWait(h, ph C.int64_t, version C.uint64_t, timeoutNs C.int64_t) C.int {
	p := pool(h, ph)
	if p == nil {
		return 1
	}
	var deadline time.Time
	if timeoutNs >= 0 {
		deadline = time.Now().Add(duration(timeoutNs))
	}
	if p.Wait(uint64(version), deadline) {
		return 1
	}
	return 0
}

//export pyiocpPoolRelease
func pyiocpPoolRelease(h, ph C.int64_t, id C.uint64_t) C.int {
	p := pool(h, ph)
	if p == nil {
		return 0
	}
	if c := p.Lookup(uint64(id)); c != nil && p.Release(c) {
		return 1
	}
	return 0
}

// pyiocpPoolClose closes the pool; it stays known (its stats, a release
// closing the connection) until the manager goes.
//
//export pyiocpPoolClose
func pyiocpPoolClose(h, ph C.int64_t) {
	if p := pool(h, ph); p != nil {
		p.Close()
	}
}

//export pyiocpPoolStats
func pyiocpPoolStats(h, ph C.int64_t, out *C.int64_t) {
	s := engine.PoolStats{}
	if p := pool(h, ph); p != nil {
		s = p.Stats()
	}
	o := unsafe.Slice(out, 4)
	o[0], o[1], o[2], o[3] = C.int64_t(s.Open), C.int64_t(s.Idle), C.int64_t(s.Waits), C.int64_t(s.Dials)
}
