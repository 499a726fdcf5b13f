package poller

import "syscall"

// Datagrams on epoll: a readable socket with receives posted is read with
// one recvmmsg for as many datagrams as it has receives posted and slots
// free (at most MaxSendTo); sends go out at once with sendmmsg, and what
// a full socket buffer leaves waits for EPOLLOUT.

// epollDgram is the datagram side of an fdState.
type epollDgram struct {
	slots *dgramSlots
	v6    bool
	send  []Datagram // a send waiting for EPOLLOUT
	done  int        // ... datagrams of it done so far
	err   error      // ... the first of them that failed
}

// dgramIO is the headers of one recvmmsg or sendmmsg, reused by every call.
type dgramIO struct {
	hdrs  [MaxSendTo]mmsghdr
	msgs  [MaxSendTo]dgramMsg
	slots [MaxSendTo]int
}

func (p *epoll) BindDatagram(s Sock, token uint64, size, slots int) (Ref, error) {
	d, err := newDgramSlots(size, slots)
	if err != nil {
		return Ref{}, err
	}
	r, err := p.add(s, token, false)
	if err != nil {
		FreeMemory(d.mem)
		return Ref{}, err
	}
	p.fds.get(r).dg = &epollDgram{slots: d, v6: sockV6(s)}
	return r, nil
}

func (p *epoll) PostRecvFrom(r Ref, n int) error {
	st := p.fds.get(r)
	st.dg.slots.wanted += n
	p.consider(st)
	return nil
}

func (p *epoll) PostSendTo(r Ref, msgs []Datagram) (int, bool, error) {
	st := p.fds.get(r)
	msgs = msgs[:min(len(msgs), MaxSendTo)]
	if len(msgs) == 0 {
		return 0, true, nil
	}
	if st.writable {
		n, err, blocked := p.sendTo(st, msgs)
		if !blocked || n > 0 {
			return n, true, err // the rest, if any, is posted again (and waits)
		}
	}
	g := st.dg
	g.send = append(g.send[:0], msgs...) // the caller may reuse msgs
	g.done, g.err = 0, nil
	st.sending = true
	return 0, false, nil
}

// sendTo sends what the socket takes of msgs: n datagrams done (sent, or
// failed and dropped), err the first that failed; blocked when the
// socket's buffer is full (the next send waits for EPOLLOUT).
func (p *epoll) sendTo(st *fdState, msgs []Datagram) (n int, err error, blocked bool) {
	io := &p.dio
	for n < len(msgs) {
		k := min(len(msgs)-n, MaxSendTo)
		for j := range k {
			io.msgs[j].setSend(&io.hdrs[j].hdr, msgs[n+j], st.dg.v6)
		}
		r, e := rawSendmmsg(st.fd, io.hdrs[:k])
		clear(io.hdrs[:k]) // hold no reference to the caller's bytes
		switch {
		case e == syscall.EINTR:
		case e == syscall.EAGAIN:
			st.writable = false
			return n, err, true
		case e != 0:
			// sendmmsg fails only when its first datagram does: that one
			// is dropped, the rest go on.
			if err == nil {
				err = e
			}
			n++
		default:
			n += r
		}
	}
	return n, err, false
}

// progressDgram does a datagram socket's posted send and receives.
func (p *epoll) progressDgram(st *fdState, batch []Completion, n int) int {
	g := st.dg
	if st.sending && st.writable && n < len(batch) {
		k, err, blocked := p.sendTo(st, g.send[g.done:])
		g.done += k
		if g.err == nil {
			g.err = err
		}
		if !blocked {
			batch[n] = Completion{Op: OpSendTo, Token: st.token, N: g.done, Err: g.err}
			n++
			p.endDgramSend(st)
		}
	}
	if st.readable && g.slots.wanted > 0 && n < len(batch) {
		n = p.recvFrom(st, batch, n)
	}
	p.consider(st)
	return n
}

func (p *epoll) endDgramSend(st *fdState) {
	g := st.dg
	st.sending = false
	clear(g.send)
	g.send, g.done, g.err = g.send[:0], 0, nil
}

// recvFrom reads up to as many datagrams as st has receives posted, slots
// free and the batch room for, in one recvmmsg.
func (p *epoll) recvFrom(st *fdState, batch []Completion, n int) int {
	d, io := st.dg.slots, &p.dio
	k := 0
	for want := min(d.wanted, len(batch)-n, MaxSendTo); k < want; k++ {
		i := d.take(p.round)
		if i < 0 {
			break // every slot holds a datagram of this round: the next Wait reads on
		}
		io.slots[k] = i
		io.msgs[k].setRecv(&io.hdrs[k].hdr, d.buf(i))
	}
	if k == 0 {
		return n
	}
	r, e := 0, syscall.EINTR
	for e == syscall.EINTR {
		r, e = rawRecvmmsg(st.fd, io.hdrs[:k])
	}
	switch e {
	case 0:
	case syscall.EAGAIN:
		r = 0
		st.readable = false
	default:
		// An error the socket holds (a connected socket's ICMP port
		// unreachable, say) completes one receive.
		r = 0
		d.wanted--
		batch[n] = Completion{Op: OpRecvFrom, Token: st.token, Err: e}
		n++
	}
	for j := range r {
		i, size := io.slots[j], int(io.hdrs[j].len)
		c := Completion{Op: OpRecvFrom, Token: st.token, Peer: fromRaw(&io.msgs[j].rsa), N: size}
		if size > d.size {
			c.Err = ErrTruncated
			d.untake(i)
		} else {
			c.Data = d.buf(i)[:size:size]
			d.delivered(i, p.round)
		}
		d.wanted--
		batch[n] = c
		n++
	}
	for j := r; j < k; j++ {
		d.untake(io.slots[j])
	}
	if e == 0 && r < k {
		st.readable = false // recvmmsg took all there was
	}
	clear(io.hdrs[:k])
	return n
}

// cancelDgram completes a datagram socket's posted receives and send.
func (p *epoll) cancelDgram(st *fdState) {
	g := st.dg
	for ; g.slots.wanted > 0; g.slots.wanted-- {
		p.done.push(Completion{Op: OpRecvFrom, Token: st.token, Err: ErrCanceled})
	}
	if st.sending {
		p.done.push(Completion{Op: OpSendTo, Token: st.token, N: g.done, Err: ErrCanceled})
		p.endDgramSend(st)
	}
}
