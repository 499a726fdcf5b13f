package poller

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

// ioCtx is the context of one operation posted to the kernel. The
// OVERLAPPED comes first: the port hands back its address, which is the
// context's. Contexts live in slabs from AllocMemory, not in the Go heap:
// the kernel writes into them until the operation completes, long after the
// call that posted it returned, and the collector must neither move nor free
// them meanwhile (nor scan them: they hold no Go pointers, so the socket is
// found again by slot and generation).
type ioCtx struct {
	ov       windows.Overlapped
	op       ctxOp
	slot     uint32 // the socket's state in iocp.socks
	gen      uint32 // ... while it has this generation
	flags    uint32 // WSARecv's flags, in place until the completion
	bytes    uint32 // AcceptEx's byte count, likewise
	accepted Sock   // ctxAccept: the socket AcceptEx accepts into; NoSock once swept (iocp_first_windows.go)
	first    *byte  // ctxAccept on a first-data listener: its receive buffer, outside the Go heap
	// ctxAccept: where AcceptEx writes the local and the remote address.
	addrs [2 * acceptAddrLen]byte
}

type ctxOp uint8

const (
	ctxAccept  ctxOp = iota + 1 // AcceptEx
	ctxConnect                  // ConnectEx
	ctxProbe                    // a zero-byte WSARecv: data or the end arrived
	ctxSend                     // WSASend
)

// acceptAddrLen is the room AcceptEx needs for one address: the largest
// sockaddr plus 16 bytes, as its documentation requires.
const acceptAddrLen = uint32(unsafe.Sizeof(windows.RawSockaddrInet6{})) + 16

const ctxSlabSize = 64 << 10

// ctxPool is a free list of contexts, grown a slab at a time and released
// only with the port (when no operation is outstanding).
type ctxPool struct {
	slabs [][]byte
	free  []*ioCtx
}

func (cp *ctxPool) get(op ctxOp, st *sockState) (*ioCtx, error) {
	if len(cp.free) == 0 {
		slab, err := AllocMemory(ctxSlabSize)
		if err != nil {
			return nil, err
		}
		cp.slabs = append(cp.slabs, slab)
		size := int(unsafe.Sizeof(ioCtx{}))
		for off := 0; off+size <= len(slab); off += size {
			cp.free = append(cp.free, (*ioCtx)(unsafe.Pointer(&slab[off])))
		}
	}
	c := cp.free[len(cp.free)-1]
	cp.free = cp.free[:len(cp.free)-1]
	*c = ioCtx{op: op, slot: st.slot, gen: st.gen, accepted: NoSock}
	return c, nil
}

func (cp *ctxPool) put(c *ioCtx) { cp.free = append(cp.free, c) }

func (cp *ctxPool) release() {
	for _, s := range cp.slabs {
		FreeMemory(s)
	}
	cp.slabs = nil
	cp.free = nil
}
