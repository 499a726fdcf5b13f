package poller

// Ref names a socket registered with a port: Register and Listen return
// it, and every later call on that socket takes it. It carries the slot of
// the socket's state in the port, so no call has to look the socket up
// (an IOCP SOCKET is a handle, not a small number to index by).
type Ref struct {
	s    Sock
	slot int32
	gen  uint32
}

// Sock is the socket r names.
func (r Ref) Sock() Sock { return r.s }

// table holds a port's state of each registered socket, by slot: epoll and
// io_uring use the descriptor as the slot (the kernel hands it back in the
// event's data), IOCP a slot the table picks. Each registration has a new
// generation, which tells a late completion of a slot's former socket from
// one of its current socket. The states of unregistered sockets are kept
// for reuse, with the room their slices grew.
type table[T any] struct {
	states []*T     // by slot; nil: free
	gens   []uint32 // the generation of each slot's registration
	free   []int32  // slots given back, when the table picks them
	spare  []*T
	gen    uint32
	picks  bool // the table picks the slots (else the caller names them)
}

// add makes a state for s at slot, or at a slot the table picks when slot
// is negative. A reused state holds its last contents: the caller sets
// every field, keeping only its slices' room.
func (t *table[T]) add(s Sock, slot int) (*T, Ref) {
	if slot < 0 {
		t.picks = true
		if n := len(t.free); n > 0 {
			slot, t.free = int(t.free[n-1]), t.free[:n-1]
		} else {
			slot = len(t.states)
		}
	}
	for len(t.states) <= slot {
		t.states = append(t.states, nil)
		t.gens = append(t.gens, 0)
	}
	var st *T
	if n := len(t.spare); n > 0 {
		st, t.spare = t.spare[n-1], t.spare[:n-1]
	} else {
		st = new(T)
	}
	t.gen++
	t.states[slot], t.gens[slot] = st, t.gen
	return st, Ref{s: s, slot: int32(slot), gen: t.gen}
}

// get is the state of r's socket. A ref to a socket since unregistered is
// the caller's broken rule.
func (t *table[T]) get(r Ref) *T {
	if st := t.match(int(r.slot), r.gen, ^uint32(0)); st != nil {
		return st
	}
	panic("poller: socket not registered")
}

// match is the state at slot if its registration's generation, in the
// bits of mask (all that a completion carries), is gen's; nil when the slot
// is free or holds a later socket.
func (t *table[T]) match(slot int, gen, mask uint32) *T {
	if slot < 0 || slot >= len(t.states) || t.states[slot] == nil || (t.gens[slot]^gen)&mask != 0 {
		return nil
	}
	return t.states[slot]
}

// remove frees r's slot and keeps its state for a later add; the caller
// has dropped what the state must not hold on to.
func (t *table[T]) remove(r Ref) {
	st := t.get(r)
	t.states[r.slot] = nil
	t.spare = append(t.spare, st)
	if t.picks {
		t.free = append(t.free, r.slot)
	}
}
