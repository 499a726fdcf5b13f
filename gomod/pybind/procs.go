package main

/*
#include "glue.h"
*/
import "C"

import (
	"os"
	"runtime"
	"sync"
)

// procs keeps the Go runtime's GOMAXPROCS, while a manager is live, at one
// P per Python thread that calls into the engine, plus one to spare, and at
// least one per worker plus one; never under the runtime's own choice;
// unless the GOMAXPROCS environment variable chose the number.
//
// A thread returning from a call into Go keeps its P as if in a system
// call: a worker waiting for completions, and any thread that sent or
// posted, until it calls again or the runtime's monitor takes the P back.
// Under taskset or in a one-CPU container GOMAXPROCS is 1: the thread
// holding the GIL, needing a P to call into the engine (a send, a timer,
// its next wait), waited for the monitor; and while no P is idle the
// monitor takes one back at each of its wake-ups, every 20 µs (callers.c
// has the figures). Idle Ps cost nothing; they are not threads.
var procs struct {
	sync.Mutex
	base    int // GOMAXPROCS as the runtime chose it
	workers int // of the live managers
}

// addWorkers counts n more live workers (n < 0: fewer), tells turns.c,
// and sets GOMAXPROCS.
func addWorkers(n int) {
	procs.Lock()
	defer procs.Unlock()
	procs.workers += n
	C.set_live_workers(C.int(procs.workers))
	setProcs()
}

// pyiocpCallersChanged: callers.c counted one more calling thread.
//
//export pyiocpCallersChanged
func pyiocpCallersChanged() {
	procs.Lock()
	defer procs.Unlock()
	setProcs()
}

// setProcs sets GOMAXPROCS from the counts; procs is locked.
func setProcs() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if procs.base == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	want := procs.base
	if procs.workers > 0 {
		want = max(want, procs.workers+1, int(C.live_callers())+1)
	}
	if runtime.GOMAXPROCS(0) != want {
		runtime.GOMAXPROCS(want)
	}
}
