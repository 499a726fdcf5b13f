package poller

import "golang.org/x/sys/windows"

// Receiving: a posted receive is a zero-byte WSARecv (a probe) that
// completes when data or the end of the stream has arrived; Wait then reads
// what is there, without blocking, into the port's arena. So an idle
// socket holds no receive memory at all (not even a pooled buffer lent to
// the kernel, as a WSARecv into a buffer would need for as long as it is
// posted), and received bytes stay valid until the next Wait as on Linux.
// The price is one more system call per receive; a read that filled its
// buffer skips the next probe, since more data is likely waiting. libuv
// receives the same way on Windows (zero-byte overlapped WSARecv, then a
// non-blocking WSARecv on a FIONBIO socket).

func (p *iocp) PostRecv(r Ref, max int) error {
	st := p.socks.get(r)
	st.recvMax = max
	if st.readable {
		p.queue(st)
		return nil
	}
	if err := p.probe(st); err != nil {
		st.recvMax = 0
		return err
	}
	return nil
}

func (p *iocp) probe(st *sockState) error {
	ctx, err := p.ctxs.get(ctxProbe, st)
	if err != nil {
		return err
	}
	// A zero-length buffer; the pointer is only required to be valid.
	wb := windows.WSABuf{Buf: &ctx.addrs[0]}
	err = windows.WSARecv(st.s, &wb, 1, nil, &ctx.flags, &ctx.ov, nil)
	if err != nil && err != windows.ERROR_IO_PENDING {
		p.ctxs.put(ctx)
		return err
	}
	st.probing = true
	return nil
}

func (p *iocp) probeDone(st *sockState, ctx *ioCtx, err error, batch []Completion, n int) int {
	st.probing = false
	p.ctxs.put(ctx)
	if st.canceled && err == nil {
		err = ErrCanceled // nothing was read: the receive is over unfinished
	}
	if err != nil {
		st.recvMax = 0
		batch[n] = Completion{Op: OpRecv, Token: st.token, Err: err}
		return n + 1
	}
	m, ok := p.read(st, batch, n)
	if !ok {
		p.queue(st)
	}
	return m
}

func (p *iocp) queue(st *sockState) {
	st.queued = true
	p.ready = append(p.ready, st)
}

func (p *iocp) unqueue(st *sockState) {
	st.queued = false
	for i, q := range p.ready {
		if q == st {
			p.ready = append(p.ready[:i], p.ready[i+1:]...)
			return
		}
	}
}

// runReady does the reads that waited for room, oldest first.
func (p *iocp) runReady(batch []Completion, n int) int {
	i := 0
	for ; i < len(p.ready) && n < len(batch); i++ {
		st := p.ready[i]
		m, ok := p.read(st, batch, n)
		if !ok {
			break
		}
		st.queued = false
		n = m
	}
	k := copy(p.ready, p.ready[i:])
	clear(p.ready[k:])
	p.ready = p.ready[:k]
	return n
}

// read reads what st's socket holds, up to its receive's max, into the
// arena. ok=false: the arena is used up for this Wait; nothing was done.
func (p *iocp) read(st *sockState, batch []Completion, n int) (int, bool) {
	buf := p.arena.room(st.recvMax)
	if buf == nil {
		return n, false
	}
	space := len(buf)
	wb := windows.WSABuf{Len: uint32(space), Buf: &buf[0]}
	var got, flags uint32
	err := windows.WSARecv(st.s, &wb, 1, &got, &flags, nil, nil)
	switch err {
	case nil:
	case windows.WSAEWOULDBLOCK:
		// Nothing after all (a previous read took it): probe again.
		st.readable = false
		if err = p.probe(st); err == nil {
			return n, true
		}
		fallthrough
	default:
		st.recvMax = 0
		st.readable = false
		batch[n] = Completion{Op: OpRecv, Token: st.token, Err: err}
		return n + 1, true
	}
	st.recvMax = 0
	st.readable = int(got) == space
	batch[n] = Completion{Op: OpRecv, Token: st.token, Data: buf[:got:got]}
	p.arena.used(int(got))
	return n + 1, true
}
