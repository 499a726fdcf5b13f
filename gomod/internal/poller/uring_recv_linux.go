package poller

// io_uring's receives: posted, kept reading (multishot, capped), and
// completed from what arrived (see uring_ahead_linux.go for what arrives
// before a post).

import "syscall"

// PostRecv asks for the socket's next data: what the read-ahead holds
// completes it at the next Wait; else the next arrival does.
func (p *uring) PostRecv(r Ref, max int) error {
	st := p.fds.get(r)
	st.recvLimit = max
	st.recvWanted = true
	if st.aheadLen() > 0 || (st.ended && !st.endTold) {
		p.waiting = append(p.waiting, st)
	}
	p.keepReading(st)
	return nil
}

// maxAhead bounds what a socket's receive reads before its consumer posts
// again: read-ahead is memory per connection. It is one buffer, what epoll
// reads at once: the multishot's cap is also the size of each read, and
// 32 KiB reads cost a stream more rounds. Up to maxHeld sockets keep
// theirs in the ring buffer it arrived in; copied out, 1000 connections
// reading 64 KiB ahead each would take 64 MiB (a slab chunk holds 128
// KiB, touched only as far as it is filled).
const maxAhead = 64 << 10

// keepReading arms a receive if the socket may be read: the stream goes on
// and the read-ahead is under the caller's max (and maxAhead). The receive
// may read at most what is left of that budget.
func (p *uring) keepReading(st *uringFD) {
	budget := min(st.recvLimit, maxAhead) - st.aheadLen()
	if st.recvArmed || st.recvQueued || st.ended || st.canceled || budget <= 0 {
		return
	}
	e := p.r.sqe()
	e.opcode = ioringOpRecv
	e.fd = int32(st.fd)
	e.flags = iosqeBufferSelect
	e.bufGroup = p.buf.bgid
	e.userData = ud(udRecv, st)
	if uringMultishotCap() {
		e.ioprio = ioringRecvMultishot
		e.fileIndex = uint32(budget) // sqe.optlen: the multishot's byte cap
	} else {
		e.len = uint32(min(budget, recvBufSize))
	}
	st.recvArmed = true
}

func (p *uring) recvDone(st *uringFD, cqe *ioCQE) {
	if cqe.flags&ioringCQEFMore == 0 {
		st.recvArmed = false
	}
	bid := int32(-1)
	if cqe.flags&ioringCQEFBuffer != 0 {
		bid = int32(cqe.flags >> ioringCQEBufferShift)
	}
	errno := syscall.Errno(-cqe.res)
	switch {
	case st.canceled:
		// Closing: what still arrives is dropped; the posted receive
		// completes once, when the multishot is over.
		if bid >= 0 {
			p.recycle = append(p.recycle, uint16(bid))
		}
		if !st.recvArmed && st.recvWanted {
			st.recvWanted = false
			p.emit(Completion{Op: OpRecv, Token: st.token, Err: ErrCanceled}, -1)
		}
		return
	case errno == syscall.ENOBUFS:
		// Every buffer is in use: the bytes wait in the socket, and the
		// receive is armed again once the last round's buffers are back.
		st.recvQueued = true
		p.nobufs = append(p.nobufs, st)
		p.starved++
		return
	case cqe.res <= 0: // end of stream, or an error
		if bid >= 0 {
			p.recycle = append(p.recycle, uint16(bid)) // should the kernel ever take a buffer for no bytes
		}
		st.ended = true
		if cqe.res < 0 {
			st.endErr = errno
		}
		if st.recvWanted {
			p.waiting = append(p.waiting, st)
		}
		return
	}
	if st.recvWanted && st.aheadLen() == 0 {
		st.recvWanted = false
		p.emit(Completion{Op: OpRecv, Token: st.token, Data: p.buf.data(uint16(bid), int(cqe.res))}, bid)
	} else {
		p.keepAhead(st, uint16(bid), int(cqe.res))
	}
	p.keepReading(st) // a receive over (its cap reached, or single-shot): the next, if the budget allows
}
