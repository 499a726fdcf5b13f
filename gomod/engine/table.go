package engine

import (
	"sync"
	"sync/atomic"
)

// table is a manager's connection map. Finding a connection by id, counting
// and shutdown take the mutex; the hot path does not: a reference held
// outside Go (the Python Connection) is a slot index plus the 64-bit id,
// checked against the slot's occupant without a lock or a hash lookup.
//
// Ids come from a 64-bit counter and are never reused, so a stale reference
// fails cleanly (ErrClosed) instead of reaching a newer connection.
type table struct {
	mu     sync.Mutex
	byID   map[uint64]*Conn
	free   []uint32
	used   uint32 // slots ever handed out
	nextID uint64
	// Slots live in fixed chunks that never move, so a lock-free reader can
	// index them while the table grows.
	dir [tableChunks]atomic.Pointer[tableChunk]
}

const (
	chunkSlots  = 1024
	tableChunks = 4096 // 4M connections per manager
)

type tableChunk [chunkSlots]atomic.Pointer[Conn]

func newTable() *table { return &table{byID: make(map[uint64]*Conn)} }

// add gives c an id and a slot; false when every slot is taken.
func (t *table) add(c *Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	var slot uint32
	if n := len(t.free); n > 0 {
		slot = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		if t.used == chunkSlots*tableChunks {
			return false
		}
		slot = t.used
		t.used++
		if slot%chunkSlots == 0 {
			t.dir[slot/chunkSlots].Store(new(tableChunk))
		}
	}
	t.nextID++
	c.id = t.nextID
	c.slot = slot
	t.byID[c.id] = c
	t.dir[slot/chunkSlots].Load()[slot%chunkSlots].Store(c)
	return true
}

// remove frees c's slot; its id is never handed out again.
func (t *table) remove(c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.byID, c.id)
	t.dir[c.slot/chunkSlots].Load()[c.slot%chunkSlots].Store(nil)
	t.free = append(t.free, c.slot)
}

// lookup is the hot path: the occupant of slot if it still is connection id.
func (t *table) lookup(slot uint32, id uint64) *Conn {
	if slot >= chunkSlots*tableChunks {
		return nil
	}
	ch := t.dir[slot/chunkSlots].Load()
	if ch == nil {
		return nil
	}
	c := ch[slot%chunkSlots].Load()
	if c == nil || c.id != id {
		return nil
	}
	return c
}

// occupant is the connection in slot, for completions: a slot is not
// freed while its connection has an operation outstanding.
func (t *table) occupant(slot uint32) *Conn {
	if slot >= chunkSlots*tableChunks {
		return nil
	}
	if ch := t.dir[slot/chunkSlots].Load(); ch != nil {
		return ch[slot%chunkSlots].Load()
	}
	return nil
}

func (t *table) get(id uint64) *Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}
