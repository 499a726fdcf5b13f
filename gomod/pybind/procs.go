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

// procs keeps the Go runtime's GOMAXPROCS at one P per worker of every
// live manager, plus one, and never under the runtime's own choice;
// unless the GOMAXPROCS environment variable chose the number.
//
// A worker's thread waits for completions in a system call, and a thread in
// a system call keeps its P until the runtime's monitor takes it back, up
// to 10 ms later. Meanwhile the thread holding the GIL needs a P of its own
// to call into the engine (a send, a timer, its next wait), and under
// taskset or in a one-CPU container GOMAXPROCS is 1: a thread pool's send,
// or another worker, waited for a worker's wait to be noticed. Idle Ps cost
// nothing; they are not threads.
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
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	if procs.base == 0 {
		procs.base = runtime.GOMAXPROCS(0)
	}
	if want := max(procs.base, procs.workers+1); runtime.GOMAXPROCS(0) != want {
		runtime.GOMAXPROCS(want)
	}
}
