package main

// #include <stdint.h>
import "C"

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// pyiocpGoAllocations is how many objects the Go side has allocated in
// this process so far: the leak checks assert that messages allocate none.
//
//export pyiocpGoAllocations
func pyiocpGoAllocations() C.int64_t {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return C.int64_t(s[0].Value.Uint64())
}

// pyiocpGoHeap collects garbage and returns the bytes the Go heap holds
// live, returning what it freed to the OS: what the engine's own
// structures cost (the timer memory test weighs 100,000 pending timers).
//
//export pyiocpGoHeap
func pyiocpGoHeap() C.int64_t {
	debug.FreeOSMemory() // collects first
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return C.int64_t(s[0].Value.Uint64())
}

// pyiocpGoMaxProcs is the Go runtime's GOMAXPROCS (see procs).
//
//export pyiocpGoMaxProcs
func pyiocpGoMaxProcs() C.int64_t { return C.int64_t(runtime.GOMAXPROCS(0)) }
