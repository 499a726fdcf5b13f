package poller

import (
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Accepts that wait for the peer's first bytes, on IOCP: AcceptEx is
// posted with a receive buffer, so that it completes only once the peer
// has sent something, and that something comes with it. A peer that
// connects and stays silent would hold the accept for ever: SweepAccepts
// closes the sockets of accepts whose peer has been connected longer than
// the timeout (SO_CONNECT_TIME), and those accepts are posted again.

// firstState is a first-data listener's: its timeout, and its accepts in
// the kernel (what SweepAccepts looks at).
type firstState struct {
	timeout time.Duration
	pending []*ioCtx
}

const (
	// firstBufSize is one accept's buffer: the first bytes, then the two
	// addresses AcceptEx writes after them.
	firstBufSize    = 2 << 10
	firstDataLen    = firstBufSize - 2*acceptAddrLen
	soConnectTime   = 0x700C // SO_CONNECT_TIME: seconds connected, ^0 while not
	firstSweepEvery = time.Second
)

// DeferAccept has nothing to do on Windows: the port's FirstData posts the
// accepts that wait.
func DeferAccept(Sock, time.Duration) error { return nil }

func (p *iocp) FirstData(r Ref, timeout time.Duration) (time.Duration, error) {
	st := p.socks.get(r)
	st.first = &firstState{timeout: max(timeout, time.Second)}
	return firstSweepEvery, nil
}

func (p *iocp) SweepAccepts(r Ref) {
	st := p.socks.get(r)
	if st.first == nil {
		return
	}
	limit := uint32(seconds(st.first.timeout))
	for _, ctx := range st.first.pending {
		if ctx.accepted == NoSock {
			continue
		}
		var secs uint32
		n := int32(unsafe.Sizeof(secs))
		err := windows.Getsockopt(ctx.accepted, windows.SOL_SOCKET, soConnectTime, (*byte)(unsafe.Pointer(&secs)), &n)
		if err == nil && secs != ^uint32(0) && secs >= limit {
			// The AcceptEx completes with an error; acceptDone posts it
			// again without closing anything more.
			windows.Closesocket(ctx.accepted)
			ctx.accepted = NoSock
		}
	}
}

// takeFirstBuf gives ctx a receive buffer for a first-data AcceptEx.
func (p *iocp) takeFirstBuf(ctx *ioCtx) (*byte, uint32, error) {
	b, err := p.firstBufs.get()
	if err != nil {
		return nil, 0, err
	}
	ctx.first = b
	return &b[0], firstDataLen, nil
}

// firstDone takes ctx's first bytes out of its buffer (into the arena, or
// the Go heap when the arena is used up for this Wait) and returns where
// the addresses are, after the bytes; releaseFirst then gives the buffer
// back.
func (p *iocp) firstDone(st *sockState, ctx *ioCtx, nbytes uint32) (data []byte, addrs *byte) {
	st.first.pending = slices.DeleteFunc(st.first.pending, func(c *ioCtx) bool { return c == ctx })
	buf := ctx.first[:]
	if nbytes > 0 {
		data = p.arena.room(int(nbytes))
		if len(data) < int(nbytes) {
			data = make([]byte, nbytes)
		} else {
			data = data[:nbytes]
			p.arena.used(int(nbytes))
		}
		copy(data, buf[:nbytes])
	}
	return data, &buf[0]
}

// releaseFirst gives ctx's buffer back (after firstDone has used it).
func (p *iocp) releaseFirst(ctx *ioCtx) {
	if ctx.first != nil {
		p.firstBufs.put(ctx.first)
		ctx.first = nil
	}
}

// firstBuf is one first-data accept's buffer.
type firstBuf [firstBufSize]byte
