package main

import (
	"os"
	"runtime"
	"sync"
)

var procsMu sync.Mutex

// ensureProcs gives the Go runtime at least n Ps (GOMAXPROCS), unless the
// GOMAXPROCS environment variable chose the number.
//
// A worker's thread waits for completions in a system call, and a thread in
// a system call keeps its P until the runtime's monitor takes it back, up
// to 10 ms later. Meanwhile the thread holding the GIL needs a P of its own
// to call into the engine (a send, a timer, the next wait), and under
// taskset or in a one-CPU container GOMAXPROCS is 1: a thread pool's send,
// or the other worker, waited for a worker's wait to be noticed. So a
// manager of w workers makes sure of w+1 Ps: one per waiting worker and one
// for whoever holds the GIL. Idle Ps cost nothing; they are not threads.
func ensureProcs(n int) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	procsMu.Lock()
	defer procsMu.Unlock()
	if runtime.GOMAXPROCS(0) < n {
		runtime.GOMAXPROCS(n)
	}
}
