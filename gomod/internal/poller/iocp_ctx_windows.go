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
	slot     uint32    // the socket's state in iocp.socks
	gen      uint32    // ... while it has this generation
	flags    uint32    // WSARecv's flags, in place until the completion
	bytes    uint32    // AcceptEx's byte count, likewise; WSARecvFrom's address length
	index    uint16    // ctxRecvFrom: the slot; ctxSendTo: the datagram's index in the send
	accepted Sock      // ctxAccept: the socket AcceptEx accepts into; NoSock once swept (iocp_first_windows.go)
	first    *firstBuf // ctxAccept on a first-data listener: its receive buffer, outside the Go heap
	// ctxAccept: where AcceptEx writes the local and the remote address;
	// ctxRecvFrom, ctxSendTo: the datagram's address.
	addrs [2 * acceptAddrLen]byte
}

type ctxOp uint8

const (
	ctxAccept   ctxOp = iota + 1 // AcceptEx
	ctxConnect                   // ConnectEx
	ctxProbe                     // a zero-byte WSARecv: data or the end arrived
	ctxSend                      // WSASend
	ctxRecvFrom                  // WSARecvFrom (udp_iocp_windows.go)
	ctxSendTo                    // WSASendTo
)

// acceptAddrLen is the room AcceptEx needs for one address: the largest
// sockaddr plus 16 bytes, as its documentation requires.
const acceptAddrLen = uint32(unsafe.Sizeof(windows.RawSockaddrInet6{})) + 16

// ctxPool is the port's contexts (see slabPool).
type ctxPool struct{ slabPool[ioCtx] }

func (cp *ctxPool) get(op ctxOp, st *sockState) (*ioCtx, error) {
	c, err := cp.slabPool.get()
	if err != nil {
		return nil, err
	}
	*c = ioCtx{op: op, slot: st.slot, gen: st.gen, accepted: NoSock}
	return c, nil
}
