package engine

import "testing"

// TestTableSlotsAndIDs: slots are reused, ids never; a stale (slot, id)
// finds nothing.
func TestTableSlotsAndIDs(t *testing.T) {
	tb := newTable()
	var live []*Conn
	seen := map[uint64]bool{}
	for round := 0; round < 5; round++ {
		for i := 0; i < 3000; i++ {
			c := &Conn{}
			if !tb.add(c) {
				t.Fatal("table full")
			}
			if seen[c.id] {
				t.Fatalf("id %d reused", c.id)
			}
			seen[c.id] = true
			live = append(live, c)
		}
		for _, c := range live[:len(live)-1000] {
			tb.remove(c)
			if tb.lookup(c.slot, c.id) != nil || tb.get(c.id) != nil {
				t.Fatal("removed connection still found")
			}
		}
		live = live[len(live)-1000:]
		for _, c := range live {
			if tb.lookup(c.slot, c.id) != c || tb.get(c.id) != c || tb.occupant(c.slot) != c {
				t.Fatal("live connection not found")
			}
			if tb.lookup(c.slot, c.id+1<<40) != nil {
				t.Fatal("wrong id found a connection")
			}
		}
	}
	if tb.used > 4000 {
		t.Errorf("%d slots for at most 4000 live connections: slots not reused", tb.used)
	}
	if tb.lookup(chunkSlots*tableChunks, 1) != nil || tb.occupant(1<<31) != nil {
		t.Fatal("out-of-range slot found something")
	}
}
