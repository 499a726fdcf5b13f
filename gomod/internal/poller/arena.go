package poller

// recvArena is the receive memory of one port, outside the Go heap and
// reused by every Wait: the backends that read themselves (epoll, IOCP)
// read into it, so an idle socket holds no receive buffer.
type recvArena struct {
	mem []byte
	off int // bytes delivered since the last Wait began
}

const (
	arenaSize = 256 << 10
	// minRecvSpace: with less arena left, a receive waits for the next
	// Wait rather than read a sliver.
	minRecvSpace = 4 << 10
)

func newRecvArena() (recvArena, error) {
	mem, err := AllocMemory(arenaSize)
	return recvArena{mem: mem}, err
}

// room is free arena for one read of at most max bytes, or nil when it is
// used up for this Wait.
func (a *recvArena) room(max int) []byte {
	space := min(max, len(a.mem)-a.off)
	if space < min(max, minRecvSpace) {
		return nil
	}
	return a.mem[a.off : a.off+space]
}

// used marks the first n bytes of the last room delivered.
func (a *recvArena) used(n int) { a.off += n }

// reset makes the whole arena free: the caller has copied what the last
// Wait delivered.
func (a *recvArena) reset() { a.off = 0 }

func (a *recvArena) free() {
	FreeMemory(a.mem)
	a.mem = nil
}
