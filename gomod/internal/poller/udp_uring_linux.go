package poller

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Datagrams on io_uring: one multishot RECVMSG per socket keeps it
// receiving into buffers the kernel picks from the port's datagram
// buffer ring (a ring of its own: a datagram takes a whole buffer, and
// the stream ring's buffers are too small for the longest datagram with
// its header). Each datagram is one CQE. Sends are a SENDMSG per
// datagram. All of a round's SQEs go to the kernel in its one
// io_uring_enter. The probe's multishot receive (Linux 6.0) comes with
// multishot RECVMSG, so no kernel that runs this backend lacks it.

// The datagram buffer ring: each buffer holds the io_uring_recvmsg_out
// header, the sender's address and a datagram of up to 64 KiB.
const (
	dgramNameRoom  = int(unsafe.Sizeof(unix.RawSockaddrInet6{}))
	dgramHeader    = int(unsafe.Sizeof(ioUringRecvmsgOut{})) + dgramNameRoom
	dgramBufSize   = 64<<10 + 64 // over dgramHeader + the largest receive size
	dgramBufCount  = 128         // datagrams a round can deliver on one port
	dgramBufGroup  = 1
	dgramMaxSize   = dgramBufSize - dgramHeader
	dgramBufMarker = 1 << 16 // a pending's bid from the datagram ring (uring.emit)
)

// ioUringRecvmsgOut is struct io_uring_recvmsg_out, at the start of each
// buffer a multishot RECVMSG fills.
type ioUringRecvmsgOut struct {
	namelen, controllen, payloadlen, flags uint32
}

// uringDgram is the datagram side of a uringFD.
type uringDgram struct {
	size     int // longer datagrams are truncated
	v6       bool
	wanted   int         // receives posted and not completed
	held     []pending   // datagrams that came with no receive posted: the next posts take them
	armed    bool        // the multishot RECVMSG is in the kernel
	pending  bool        // on uring.dgArm: armed again at the next Wait
	msg      unix.Msghdr // the multishot's: room for the name, no data (the buffer is the kernel's pick)
	send     [MaxSendTo]dgramMsg
	sendHdrs [MaxSendTo]unix.Msghdr
	sendBufs []Datagram // kept reachable while the kernel reads them
	sendOut  int        // SENDMSGs in the kernel
	sendDone int        // ... datagrams of the posted send done
	sendErr  error      // ... the first that failed
}

// udDgram is the user_data of a datagram socket's SQE: a send's index in
// the send takes 8 bits of the generation's.
func udDgram(kind uint64, st *uringFD, i int) uint64 {
	return kind<<56 | uint64(i)<<48 | uint64(st.gen&0xffff)<<32 | uint64(uint32(st.fd))
}

func (p *uring) BindDatagram(s Sock, token uint64, size, slots int) (Ref, error) {
	if size < 1 || size > dgramMaxSize || slots < 1 || slots > MaxDatagramSlots {
		return Ref{}, errBadSlots
	}
	if err := p.start(); err != nil {
		return Ref{}, err
	}
	if p.dbuf == nil {
		b, err := newBufRing(p.r, dgramBufGroup, dgramBufSize, dgramBufCount)
		if err != nil {
			return Ref{}, err
		}
		p.dbuf = b
	}
	r, err := p.add(s, token, false)
	if err != nil {
		return Ref{}, err
	}
	g := &uringDgram{size: size, v6: sockV6(s)}
	g.msg.Namelen = uint32(dgramNameRoom)
	p.fds.get(r).dg = g
	return r, nil
}

func (p *uring) PostRecvFrom(r Ref, n int) error {
	st := p.fds.get(r)
	g := st.dg
	g.wanted += n
	k := 0
	for ; k < len(g.held) && g.wanted > 0; k++ {
		g.wanted--
		p.later(g.held[k].c, g.held[k].bid) // delivered first by the next Wait
	}
	g.held = g.held[:copy(g.held, g.held[k:])]
	p.armRecvFrom(st)
	return nil
}

// armRecvFrom queues the socket's multishot RECVMSG if receives are
// posted and none is in the kernel.
func (p *uring) armRecvFrom(st *uringFD) {
	g := st.dg
	if g.armed || st.canceled || g.wanted == 0 {
		return
	}
	e := p.r.sqe()
	e.opcode = ioringOpRecvmsg
	e.fd = int32(st.fd)
	e.addr = uint64(uintptr(unsafe.Pointer(&g.msg)))
	e.len = 1
	e.ioprio = ioringRecvMultishot
	e.flags = iosqeBufferSelect
	e.bufGroup = dgramBufGroup
	e.opFlags = recvFlags
	e.userData = udDgram(udRecvFrom, st, 0)
	g.armed = true
}

// armLater arms the socket's receive at the next Wait: after the ring's
// buffers are back (ENOBUFS), or after an error, which must not spin.
func (p *uring) armLater(st *uringFD) {
	if !st.dg.pending {
		st.dg.pending = true
		p.dgArm = append(p.dgArm, st)
	}
}

// armPending arms the receives that waited for the next Wait.
func (p *uring) armPending() {
	rearm(&p.dgArm, func(st *uringFD) {
		st.dg.pending = false
		p.armRecvFrom(st)
	})
}

func (p *uring) recvFromDone(st *uringFD, cqe *ioCQE) {
	g := st.dg
	if cqe.flags&ioringCQEFMore == 0 {
		g.armed = false
	}
	bid := -1
	if cqe.flags&ioringCQEFBuffer != 0 {
		bid = int(cqe.flags >> ioringCQEBufferShift)
	}
	errno := syscall.Errno(-cqe.res)
	switch {
	case st.canceled:
		// What still arrives is dropped; the posted receives complete
		// once the multishot is over.
		p.dropDgramBuf(bid)
		if !g.armed {
			p.cancelWanted(st)
		}
		return
	case errno == syscall.ENOBUFS:
		p.dgStarved = true // every buffer holds a datagram of this round
		p.armLater(st)
		return
	case cqe.res < 0:
		// An error the socket holds (a connected socket's ICMP port
		// unreachable, say) completes one receive.
		p.dropDgramBuf(bid)
		p.complete1(st, Completion{Op: OpRecvFrom, Token: st.token, Err: errno}, -1)
		if !g.armed {
			p.armLater(st)
		}
		return
	}
	if !g.armed {
		p.armLater(st) // the kernel ended the multishot: it goes on at the next Wait
	}
	if bid < 0 {
		return // no buffer, no datagram: not a completion the kernel makes
	}
	buf := p.dbuf.data(uint16(bid), int(cqe.res))
	out := (*ioUringRecvmsgOut)(unsafe.Pointer(&buf[0]))
	name := (*unix.RawSockaddrAny)(unsafe.Pointer(&buf[unsafe.Sizeof(*out)]))
	n := int(out.payloadlen) // the whole datagram's length (MSG_TRUNC)
	c := Completion{Op: OpRecvFrom, Token: st.token, N: n, Peer: fromRaw(name)}
	if out.flags&unix.MSG_TRUNC != 0 || n > g.size {
		p.dropDgramBuf(bid)
		c.Err = ErrTruncated
		p.complete1(st, c, -1)
		return
	}
	c.Data = buf[dgramHeader : dgramHeader+n : dgramHeader+n]
	p.complete1(st, c, int32(bid)|dgramBufMarker)
}

// complete1 completes one posted receive with c (its buffer, if any, goes
// back to the ring the Wait after c is delivered), or holds c for the
// next post: one Wait may bring more datagrams than receives are posted.
func (p *uring) complete1(st *uringFD, c Completion, bid int32) {
	g := st.dg
	if g.wanted == 0 {
		g.held = append(g.held, pending{c, bid})
		return
	}
	g.wanted--
	p.emit(c, bid)
}

// dropHeld gives back the buffers of datagrams held for a post.
func (p *uring) dropHeld(g *uringDgram) {
	for _, h := range g.held {
		if h.bid >= 0 {
			p.drecycle = append(p.drecycle, uint16(h.bid))
		}
	}
	clear(g.held)
	g.held = g.held[:0]
}

// dropDgramBuf gives back a datagram buffer nothing was delivered from.
func (p *uring) dropDgramBuf(bid int) {
	if bid >= 0 {
		p.drecycle = append(p.drecycle, uint16(bid))
	}
}

// cancelWanted completes the socket's posted receives, canceled.
func (p *uring) cancelWanted(st *uringFD) {
	for ; st.dg.wanted > 0; st.dg.wanted-- {
		p.emit(Completion{Op: OpRecvFrom, Token: st.token, Err: ErrCanceled}, -1)
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

// cancelDgram cancels a datagram socket's receive and send in the kernel;
// posted receives complete when the multishot is over, at once if none is
// in the kernel.
func (p *uring) cancelDgram(st *uringFD) {
	g := st.dg
	p.dropHeld(g)
	if g.armed {
		p.cancel(udDgram(udRecvFrom, st, 0))
	} else {
		for ; g.wanted > 0; g.wanted-- {
			p.later(Completion{Op: OpRecvFrom, Token: st.token, Err: ErrCanceled}, -1)
		}
	}
	if g.sendOut > 0 {
		for j := range g.sendBufs {
			p.cancel(udDgram(udSendTo, st, j)) // one already done is not found: no harm
		}
	}
}

// forgetDgram drops a datagram socket's state at Unregister.
func (p *uring) forgetDgram(st *uringFD) {
	if st.dg.pending {
		for i, q := range p.dgArm {
			if q == st {
				p.dgArm = append(p.dgArm[:i], p.dgArm[i+1:]...)
				break
			}
		}
	}
	clear(st.dg.sendBufs)
	p.dropHeld(st.dg)
	st.dg = nil
}
