package engine

// heapEntry is what a minHeap holds: something with a deadline that knows
// its own place in the heap (-1: not in it), so that it can be moved or
// removed without a search.
type heapEntry interface {
	comparable
	key() int64
	place() *int
}

// minHeap is a min-heap by key. A worker keeps two: its connections by
// their next deadline (timeouts.go) and its application timers (timers.go).
type minHeap[E heapEntry] []E

func (h minHeap[E]) peek() (E, bool) {
	if len(h) == 0 {
		var zero E
		return zero, false
	}
	return h[0], true
}

// push adds e, which is in no heap.
func (h *minHeap[E]) push(e E) {
	*e.place() = len(*h)
	*h = append(*h, e)
	h.up(len(*h) - 1)
}

// fix restores the order after e's key changed.
func (h minHeap[E]) fix(e E) {
	if i := *e.place(); !h.up(i) {
		h.down(i)
	}
}

// remove takes e out of the heap; nothing happens if it is not in it.
func (h *minHeap[E]) remove(e E) {
	i := *e.place()
	if i < 0 {
		return
	}
	last := len(*h) - 1
	h.swap(i, last)
	var zero E
	(*h)[last] = zero
	*h = (*h)[:last]
	if i < last {
		h.fix((*h)[i])
	}
	*e.place() = -1
}

// filter keeps the entries keep approves and orders them again: one pass
// instead of a removal each, for sweeping many entries at once.
func (h *minHeap[E]) filter(keep func(E) bool) {
	kept := (*h)[:0]
	for _, e := range *h {
		if keep(e) {
			*e.place() = len(kept)
			kept = append(kept, e)
		} else {
			*e.place() = -1
		}
	}
	var zero E
	for i := len(kept); i < len(*h); i++ {
		(*h)[i] = zero
	}
	*h = kept
	for i := len(kept)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h minHeap[E]) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	*h[i].place() = i
	*h[j].place() = j
}

func (h minHeap[E]) up(i int) bool {
	moved := false
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].key() <= h[i].key() {
			break
		}
		h.swap(i, parent)
		i = parent
		moved = true
	}
	return moved
}

func (h minHeap[E]) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].key() < h[l].key() {
			m = r
		}
		if h[i].key() <= h[m].key() {
			return
		}
		h.swap(i, m)
		i = m
	}
}
