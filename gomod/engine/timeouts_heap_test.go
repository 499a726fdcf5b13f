package engine

import (
	"math/rand"
	"testing"
)

// TestTimerHeapOrder: whatever the sets, moves and removals, the heap pops
// connections in deadline order and keeps heapIdx right.
func TestTimerHeapOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	var h connTimers
	conns := make([]*Conn, 300)
	for i := range conns {
		conns[i] = &Conn{heapIdx: -1}
	}
	for step := 0; step < 5000; step++ {
		c := conns[rng.Intn(len(conns))]
		switch rng.Intn(3) {
		case 0, 1:
			h.set(c, 1+rng.Int63n(1000))
		case 2:
			h.set(c, 0)
		}
		for i, x := range h.h {
			if x.heapIdx != i {
				t.Fatalf("step %d: heapIdx %d at %d", step, x.heapIdx, i)
			}
		}
	}
	last := int64(0)
	for c := h.peek(); c != nil; c = h.peek() {
		if c.deadline < last {
			t.Fatalf("popped %d after %d", c.deadline, last)
		}
		last = c.deadline
		h.remove(c)
		if c.heapIdx != -1 || c.deadline != 0 {
			t.Fatal("removed connection still marked in the heap")
		}
	}
}
