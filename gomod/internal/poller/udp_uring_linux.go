package poller

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Datagrams on io_uring: each posted receive is a RECVMSG into a slot of
// the socket's receive memory, and each datagram of a send a SENDMSG;
// all of a round's go to the kernel in the round's one io_uring_enter.
// (A multishot RECVMSG from the provided-buffer ring would need no SQE
// per datagram; this keeps one per receive, each with its own slot.)

// uringDgram is the datagram side of a uringFD.
type uringDgram struct {
	slots    *dgramSlots
	v6       bool
	recv     []dgramMsg    // by slot
	recvHdrs []unix.Msghdr // by slot
	pending  bool          // on uring.dgArm: receives wait for slots to come free
	send     [MaxSendTo]dgramMsg
	sendHdrs [MaxSendTo]unix.Msghdr
	sendBufs []Datagram // kept reachable while the kernel reads them
	sendOut  int        // SENDMSGs in the kernel
	sendDone int        // ... datagrams of the posted send done
	sendErr  error      // ... the first that failed
}

// udDgram is the user_data of a datagram socket's SQE: its slot (a
// receive's) or its index in the send (a send's) takes 8 bits of the
// generation's.
func udDgram(kind uint64, st *uringFD, i int) uint64 {
	return kind<<56 | uint64(i)<<48 | uint64(st.gen&0xffff)<<32 | uint64(uint32(st.fd))
}

func (p *uring) BindDatagram(s Sock, token uint64, size, slots int) (Ref, error) {
	d, err := newDgramSlots(size, slots)
	if err != nil {
		return Ref{}, err
	}
	r, err := p.add(s, token, false)
	if err != nil {
		FreeMemory(d.mem)
		return Ref{}, err
	}
	p.fds.get(r).dg = &uringDgram{slots: d, v6: sockV6(s), recv: make([]dgramMsg, slots), recvHdrs: make([]unix.Msghdr, slots)}
	return r, nil
}

func (p *uring) PostRecvFrom(r Ref, n int) error {
	st := p.fds.get(r)
	st.dg.slots.wanted += n
	p.armRecvFrom(st)
	return nil
}

// armRecvFrom queues a RECVMSG for each posted receive not in the kernel,
// while slots are free; the rest wait on dgArm for the next Wait, when
// the slots of this round's datagrams come free.
func (p *uring) armRecvFrom(st *uringFD) {
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
		g.recv[i].setRecv(&g.recvHdrs[i], d.buf(i))
		e := p.r.sqe()
		e.opcode = ioringOpRecvmsg
		e.fd = int32(st.fd)
		e.addr = uint64(uintptr(unsafe.Pointer(&g.recvHdrs[i])))
		e.len = 1
		e.opFlags = recvFlags
		e.userData = udDgram(udRecvFrom, st, i)
	}
}

// armPending arms the receives that waited for slots (Wait, round begun).
func (p *uring) armPending() {
	list := p.dgArm
	p.dgArm = nil
	for _, st := range list {
		st.dg.pending = false
		p.armRecvFrom(st)
	}
	clear(list)
	if p.dgArm == nil {
		p.dgArm = list[:0]
	}
}

func (p *uring) PostSendTo(r Ref, msgs []Datagram) (int, bool, error) {
	st := p.fds.get(r)
	g := st.dg
	msgs = msgs[:min(len(msgs), MaxSendTo)]
	if len(msgs) == 0 {
		return 0, true, nil
	}
	g.sendBufs = append(g.sendBufs[:0], msgs...)
	for j, m := range msgs {
		g.send[j].setSend(&g.sendHdrs[j], m, g.v6)
		e := p.r.sqe()
		e.opcode = ioringOpSendmsg
		e.fd = int32(st.fd)
		e.addr = uint64(uintptr(unsafe.Pointer(&g.sendHdrs[j])))
		e.len = 1
		e.opFlags = unix.MSG_NOSIGNAL
		e.userData = udDgram(udSendTo, st, j)
	}
	g.sendOut, g.sendDone, g.sendErr = len(msgs), 0, nil
	return 0, false, nil
}

func (p *uring) recvFromDone(st *uringFD, cqe *ioCQE) {
	g := st.dg
	d := g.slots
	i := int(cqe.userData >> 48 & 0xff)
	d.wanted--
	c := Completion{Op: OpRecvFrom, Token: st.token}
	switch {
	case st.canceled || -cqe.res == int32(syscall.ECANCELED):
		d.untake(i)
		c.Err = ErrCanceled
	case cqe.res < 0:
		d.untake(i)
		c.Err = syscall.Errno(-cqe.res)
	case int(cqe.res) > d.size:
		d.untake(i)
		c.Err, c.N, c.Peer = ErrTruncated, int(cqe.res), fromRaw(&g.recv[i].rsa)
	default:
		// harvest makes a completion only while the batch has room: this
		// one is delivered in this round, and the slot is reused after it.
		n := int(cqe.res)
		c.Data, c.N, c.Peer = d.buf(i)[:n:n], n, fromRaw(&g.recv[i].rsa)
		d.delivered(i, p.round)
	}
	p.emit(c, -1)
}

func (p *uring) sendToDone(st *uringFD, cqe *ioCQE) {
	g := st.dg
	g.sendOut--
	g.sendDone++
	switch {
	case cqe.res >= 0:
	case -cqe.res == int32(syscall.ECANCELED):
		g.sendErr = ErrCanceled
	case g.sendErr == nil:
		g.sendErr = syscall.Errno(-cqe.res)
	}
	if g.sendOut > 0 {
		return
	}
	c := Completion{Op: OpSendTo, Token: st.token, N: g.sendDone, Err: g.sendErr}
	if st.canceled {
		c.Err = ErrCanceled
	}
	clear(g.sendBufs)
	clear(g.sendHdrs[:])
	g.sendBufs = g.sendBufs[:0]
	p.emit(c, -1)
}

// cancelDgram cancels a datagram socket's receives and send in the
// kernel; posted receives that had no slot yet complete at once.
func (p *uring) cancelDgram(st *uringFD) {
	g := st.dg
	d := g.slots
	for i, s := range d.state {
		if s == slotKernel {
			p.cancel(udDgram(udRecvFrom, st, i))
		}
	}
	for ; d.wanted > d.kernel; d.wanted-- {
		p.later(Completion{Op: OpRecvFrom, Token: st.token, Err: ErrCanceled}, -1)
	}
	if g.sendOut > 0 {
		for j := range g.sendBufs {
			p.cancel(udDgram(udSendTo, st, j)) // one already done is not found: no harm
		}
	}
}

// forgetDgram drops a datagram socket's state at Unregister.
func (p *uring) forgetDgram(st *uringFD) {
	g := st.dg
	if g.pending {
		for i, q := range p.dgArm {
			if q == st {
				p.dgArm = append(p.dgArm[:i], p.dgArm[i+1:]...)
				break
			}
		}
	}
	clear(g.sendBufs)
	p.retired.add(g.slots.mem)
	st.dg = nil
}
