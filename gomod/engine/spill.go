package engine

import "github.com/pyiocp/pyiocp/gomod/internal/poller"

// spillArena is a worker's memory for delivering data it had to hold (the
// application paused reading). Like the poller's receive memory it is
// outside the Go heap, so every Event.Data may be handed to C, and it is
// reused every round.
type spillArena struct {
	buf []byte
	off int
}

func (a *spillArena) init(n int) (err error) {
	a.buf, err = poller.AllocMemory(n)
	return err
}

func (a *spillArena) reset() { a.off = 0 }

// take returns up to n bytes of free spill memory.
func (a *spillArena) take(n int) []byte {
	n = min(n, len(a.buf)-a.off)
	b := a.buf[a.off : a.off+n : a.off+n]
	a.off += n
	return b
}

// untake gives back the last n bytes of the last take, unused.
func (a *spillArena) untake(n int) { a.off -= n }

// takeAll returns n bytes of free spill memory, or nil if fewer are left.
func (a *spillArena) takeAll(n int) []byte {
	if n > len(a.buf)-a.off {
		return nil
	}
	return a.take(n)
}

func (a *spillArena) free() {
	if a.buf != nil {
		poller.FreeMemory(a.buf)
		a.buf = nil
	}
}
