package poller

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

// Datagrams on IOCP: each posted receive is a WSARecvFrom into a slot of
// the socket's receive memory, each datagram of a send a WSASendTo; each
// completes through the port. The context holds the address (WSARecvFrom
// writes it there, WSASendTo reads it from there), outside the Go heap.

// iocpDgram is the datagram side of a sockState.
type iocpDgram struct {
	slots    *dgramSlots
	v6       bool
	pending  bool // on iocp.dgArm: receives wait for slots to come free
	sendOut  int  // WSASendTo calls in the kernel
	sendDone int  // ... datagrams of the posted send done
	sendErr  error
}

// statusBufferOverflow is NTSTATUS STATUS_BUFFER_OVERFLOW.
const statusBufferOverflow = 0x80000005

// addrRoom is the room a context has for a datagram's address.
const addrRoom = int32(len(ioCtx{}.addrs))

func ctxAddr(ctx *ioCtx) *windows.RawSockaddrAny {
	return (*windows.RawSockaddrAny)(unsafe.Pointer(&ctx.addrs[0]))
}

func (p *iocp) BindDatagram(s Sock, token uint64, size, slots int) (Ref, error) {
	d, err := newDgramSlots(size, slots)
	if err != nil {
		return Ref{}, err
	}
	st, r, err := p.add(s, token)
	if err != nil {
		FreeMemory(d.mem)
		return Ref{}, err
	}
	st.dg = &iocpDgram{slots: d, v6: sockV6(s)}
	return r, nil
}

func (p *iocp) PostRecvFrom(r Ref, n int) error {
	st := p.socks.get(r)
	st.dg.slots.wanted += n
	p.armRecvFrom(st)
	return nil
}

// armRecvFrom posts a WSARecvFrom for each posted receive not in the
// kernel, while slots are free; the rest wait on dgArm for the next Wait.
// One that fails at once completes with its error through the next Wait.
func (p *iocp) armRecvFrom(st *sockState) {
	g := st.dg
	d := g.slots
	for !st.canceled && d.kernel < d.wanted {
		i := d.take(p.round)
		if i < 0 {
			if !g.pending {
				g.pending = true
				p.dgArm = append(p.dgArm, st)
			}
			return
		}
		ctx, err := p.ctxs.get(ctxRecvFrom, st)
		if err == nil {
			ctx.index = uint16(i)
			ctx.bytes = uint32(addrRoom)
			buf := d.buf(i)
			wb := windows.WSABuf{Len: uint32(len(buf)), Buf: &buf[0]}
			err = windows.WSARecvFrom(st.s, &wb, 1, nil, &ctx.flags, ctxAddr(ctx), (*int32)(unsafe.Pointer(&ctx.bytes)), &ctx.ov, nil)
			if err == windows.ERROR_IO_PENDING || err == windows.WSAEMSGSIZE {
				// A truncated datagram taken at once ends with a warning
				// status, not an error: its packet is queued like a
				// success's, and recvFromDone reports it.
				err = nil
			}
			if err != nil {
				p.ctxs.put(ctx)
			}
		}
		if err != nil {
			d.untake(i)
			d.wanted--
			p.done.push(Completion{Op: OpRecvFrom, Token: st.token, Err: err})
		}
	}
}

// armPending arms the receives that waited for slots (Wait, round begun).
func (p *iocp) armPending() {
	rearm(&p.dgArm, func(st *sockState) {
		st.dg.pending = false
		p.armRecvFrom(st)
	})
}

func (p *iocp) recvFromDone(st *sockState, ctx *ioCtx, nbytes uint32, err error, batch []Completion, n int) int {
	d := st.dg.slots
	i := int(ctx.index)
	c := Completion{Op: OpRecvFrom, Token: st.token, N: int(nbytes), Peer: fromRaw(ctxAddr(ctx)), Err: err}
	// Windows fails a truncated receive with WSAEMSGSIZE; Wine completes
	// it with its status, STATUS_BUFFER_OVERFLOW, a warning that
	// WSAGetOverlappedResult lets pass.
	if err == windows.WSAEMSGSIZE || uint32(ctx.ov.Internal) == statusBufferOverflow {
		err = ErrTruncated // N: what fitted; Windows does not tell the whole length
	}
	c.Err = err
	p.ctxs.put(ctx)
	d.wanted--
	switch {
	case st.canceled && err == nil:
		c.Err = ErrCanceled
		fallthrough
	case err != nil:
		d.untake(i)
	default:
		c.Data = d.buf(i)[:nbytes:nbytes]
		d.delivered(i, p.round)
	}
	batch[n] = c
	return n + 1
}

// PostSendTo posts a WSASendTo per datagram; those that fail at once are
// done with their error. If none is left in the kernel the send is done
// at once, else one OpSendTo follows the last.
func (p *iocp) PostSendTo(r Ref, msgs []Datagram) (int, bool, error) {
	st := p.socks.get(r)
	g := st.dg
	msgs = msgs[:min(len(msgs), MaxSendTo)]
	if len(msgs) == 0 {
		return 0, true, nil
	}
	g.sendOut, g.sendDone, g.sendErr = 0, 0, nil
	for j, m := range msgs {
		ctx, err := p.ctxs.get(ctxSendTo, st)
		if err == nil {
			ctx.index = uint16(j)
			wb := windows.WSABuf{Buf: &ctx.addrs[0]} // an empty datagram: any valid pointer
			if len(m.Data) > 0 {
				wb = windows.WSABuf{Len: uint32(len(m.Data)), Buf: &m.Data[0]}
				st.pin.Pin(&m.Data[0]) // read by the kernel until the completion
			}
			var to *windows.RawSockaddrAny
			var tolen int32
			if m.Addr.IsValid() {
				to = ctxAddr(ctx)
				tolen = putSockaddr(to, m.Addr, g.v6)
			}
			err = windows.WSASendTo(st.s, &wb, 1, nil, 0, to, tolen, &ctx.ov, nil)
			if err == windows.ERROR_IO_PENDING {
				err = nil
			}
			if err != nil {
				p.ctxs.put(ctx)
			}
		}
		if err != nil {
			g.sendDone++
			if g.sendErr == nil {
				g.sendErr = err
			}
			continue
		}
		g.sendOut++
	}
	if g.sendOut == 0 {
		st.pin.Unpin()
		return g.sendDone, true, g.sendErr
	}
	st.sending = true
	return 0, false, nil
}

func (p *iocp) sendToDone(st *sockState, ctx *ioCtx, err error, batch []Completion, n int) int {
	g := st.dg
	p.ctxs.put(ctx)
	g.sendOut--
	g.sendDone++
	if err != nil && (g.sendErr == nil || err == ErrCanceled) {
		g.sendErr = err
	}
	if g.sendOut > 0 {
		return n
	}
	st.sending = false
	st.pin.Unpin()
	c := Completion{Op: OpSendTo, Token: st.token, N: g.sendDone, Err: g.sendErr}
	if st.canceled {
		c.Err = ErrCanceled
	}
	batch[n] = c
	return n + 1
}

// cancelDgram: CancelIoEx ends what is in the kernel; posted receives that
// had no slot yet complete at once.
func (p *iocp) cancelDgram(st *sockState) {
	d := st.dg.slots
	for ; d.wanted > d.kernel; d.wanted-- {
		p.done.push(Completion{Op: OpRecvFrom, Token: st.token, Err: ErrCanceled})
	}
	if d.kernel > 0 || st.dg.sendOut > 0 {
		windows.CancelIoEx(st.s, nil)
	}
}

// forgetDgram drops a datagram socket's state at Unregister.
func (p *iocp) forgetDgram(st *sockState) {
	if st.dg.pending {
		for i, q := range p.dgArm {
			if q == st {
				p.dgArm = append(p.dgArm[:i], p.dgArm[i+1:]...)
				break
			}
		}
	}
	p.retired.add(st.dg.slots.mem)
}
