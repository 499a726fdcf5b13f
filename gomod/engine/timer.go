package engine

// timerHeap is a worker's one timer structure: a min-heap of connections
// keyed by their next deadline (connect, accept or idle timeout). There is
// no goroutine or runtime timer per connection; the worker's wait is bounded
// by the earliest deadline. Activity does not touch the heap: a deadline
// that fires early is recomputed from the connection's last activity.
type timerHeap []*Conn

func (h timerHeap) peek() *Conn {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}

// set puts c in the heap at deadline d, moves it, or removes it (d == 0).
func (h *timerHeap) set(c *Conn, d int64) {
	switch {
	case d == 0:
		h.remove(c)
	case c.heapIdx < 0:
		c.deadline = d
		c.heapIdx = len(*h)
		*h = append(*h, c)
		h.up(c.heapIdx)
	default:
		c.deadline = d
		if !h.up(c.heapIdx) {
			h.down(c.heapIdx)
		}
	}
}

func (h *timerHeap) remove(c *Conn) {
	i := c.heapIdx
	if i < 0 {
		return
	}
	last := len(*h) - 1
	h.swap(i, last)
	(*h)[last] = nil
	*h = (*h)[:last]
	if i < last && !h.up(i) {
		h.down(i)
	}
	c.heapIdx = -1
	c.deadline = 0
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}

func (h timerHeap) up(i int) bool {
	moved := false
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].deadline <= h[i].deadline {
			break
		}
		h.swap(i, parent)
		i = parent
		moved = true
	}
	return moved
}

func (h timerHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].deadline < h[l].deadline {
			m = r
		}
		if h[i].deadline <= h[m].deadline {
			return
		}
		h.swap(i, m)
		i = m
	}
}
