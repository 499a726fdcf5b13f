package poller

// doneQueue holds completions a port made outside Wait (a cancel of what
// the kernel never had, a read that found the batch full), for the next
// Wait to deliver first, oldest first.
type doneQueue[T any] struct {
	q    []T
	head int // q[:head] are delivered
}

func (d *doneQueue[T]) push(c T) {
	if d.head > 0 && d.head >= cap(d.q)/2 {
		// Compact rather than grow: what was taken is gone.
		d.q = d.q[:copy(d.q, d.q[d.head:])]
		d.head = 0
	}
	d.q = append(d.q, c)
}

// take removes the oldest completions, at most max of them; the slice is
// valid until the next push.
func (d *doneQueue[T]) take(max int) []T {
	k := min(max, len(d.q)-d.head)
	out := d.q[d.head : d.head+k]
	d.head += k
	if d.head == len(d.q) {
		d.q, d.head = d.q[:0], 0 // out stays valid: only a push writes
	}
	return out
}

func (d *doneQueue[T]) len() int { return len(d.q) - d.head }
