package poller

// io_uring's receives: posted, kept reading (multishot, capped), and
// completed from what arrived (see uring_ahead_linux.go for what arrives
// before a post).

import "syscall"

// uringRecv is one socket's receive side, in three parts that change
// apart: whether the caller has a receive posted (wanted, at most limit
// bytes), what the kernel has of it (kernel), and how far the stream has
// come (end). Bytes that arrive while no receive is posted are read-ahead
// (held, then ahead), delivered first by the next post.
type uringRecv struct {
	wanted bool // the caller's receive is posted: the next arrival completes it
	limit  int  // ... and may read this much ahead of delivery
	kernel rxKernel
	end    rxEnd
	endErr error   // rxEnded: nil for the peer's end of stream, else the error
	held   heldBuf // read-ahead, first: in the ring buffer it arrived in
	ahead  []byte  // read-ahead, after held: copied out
}

// rxKernel is where the socket's read stands with the kernel.
type rxKernel uint8

const (
	rxIdle    rxKernel = iota // no receive SQE: keepReading arms one when the budget allows
	rxArmed                   // a receive (multishot or single-shot) is in the kernel
	rxStarved                 // it found the buffer ring empty: on nobufs, armed again next Wait
)

// rxEnd is how far the stream has come.
type rxEnd uint8

const (
	rxOpen    rxEnd = iota // more may arrive
	rxEnded                // the end (or an error) came, behind the read-ahead; not told yet
	rxEndTold              // a receive completed with it: nothing more is read
)

// PostRecv asks for the socket's next data: what the read-ahead holds
// completes it at the next Wait; else the next arrival does.
func (p *uring) PostRecv(r Ref, max int) error {
	st := p.fds.get(r)
	st.rx.limit = max
	st.rx.wanted = true
	if st.aheadLen() > 0 || st.rx.end == rxEnded {
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
	budget := min(st.rx.limit, maxAhead) - st.aheadLen()
	if st.rx.kernel != rxIdle || st.rx.end != rxOpen || st.canceled || budget <= 0 {
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
	st.rx.kernel = rxArmed
}

func (p *uring) recvDone(st *uringFD, cqe *ioCQE) {
	if cqe.flags&ioringCQEFMore == 0 {
		st.rx.kernel = rxIdle
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
		if st.rx.kernel != rxArmed && st.rx.wanted {
			st.rx.wanted = false
			p.emit(Completion{Op: OpRecv, Token: st.token, Err: ErrCanceled}, -1)
		}
		return
	case errno == syscall.ENOBUFS:
		// Every buffer is in use: the bytes wait in the socket, and the
		// receive is armed again once the last round's buffers are back.
		st.rx.kernel = rxStarved
		p.nobufs = append(p.nobufs, st)
		p.starved++
		return
	case cqe.res <= 0: // end of stream, or an error
		if bid >= 0 {
			p.recycle = append(p.recycle, uint16(bid)) // should the kernel ever take a buffer for no bytes
		}
		st.rx.end = rxEnded
		if cqe.res < 0 {
			st.rx.endErr = errno
		}
		if st.rx.wanted {
			p.waiting = append(p.waiting, st)
		}
		return
	}
	if st.rx.wanted && st.aheadLen() == 0 {
		st.rx.wanted = false
		p.emit(Completion{Op: OpRecv, Token: st.token, Data: p.buf.data(uint16(bid), int(cqe.res))}, bid)
	} else {
		p.keepAhead(st, uint16(bid), int(cqe.res))
	}
	p.keepReading(st) // a receive over (its cap reached, or single-shot): the next, if the budget allows
}
