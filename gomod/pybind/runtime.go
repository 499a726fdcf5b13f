package main

// #include <stdint.h>
import "C"

import "runtime/metrics"

// pyiocpGoAllocations is how many objects the Go side has allocated in
// this process so far: the leak checks assert that messages allocate none.
//
//export pyiocpGoAllocations
func pyiocpGoAllocations() C.int64_t {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	metrics.Read(s)
	return C.int64_t(s[0].Value.Uint64())
}
