package poller

// aheadPool is the memory of io_uring read-ahead: fixed chunks outside the
// Go heap, so that bytes a socket read before its consumer posted again
// neither grow the heap (whose goal then doubles it) nor outlive the port:
// Close unmaps every slab.
type aheadPool struct {
	free  [][]byte // chunks ready for use, len 0
	slabs [][]byte
}

const (
	// aheadChunk holds a socket's whole read-ahead: up to maxAhead, plus
	// the one buffer the read that reaches the cap may fill.
	aheadChunk = maxAhead + recvBufSize
	aheadSlab  = 32 // chunks per slab (1.5 MiB)
)

// get returns an empty chunk, or nil when no memory could be mapped.
func (a *aheadPool) get() []byte {
	if len(a.free) == 0 {
		slab, err := AllocMemory(aheadChunk * aheadSlab)
		if err != nil {
			return nil
		}
		a.slabs = append(a.slabs, slab)
		for i := range aheadSlab {
			a.free = append(a.free, slab[i*aheadChunk:i*aheadChunk:(i+1)*aheadChunk])
		}
	}
	c := a.free[len(a.free)-1]
	a.free = a.free[:len(a.free)-1]
	return c
}

// put takes back a chunk from get; a heap slice (the fallback) is left to
// the collector.
func (a *aheadPool) put(c []byte) {
	if cap(c) == aheadChunk {
		a.free = append(a.free, c[:0])
	}
}

func (a *aheadPool) close() {
	for _, s := range a.slabs {
		FreeMemory(s)
	}
	a.free, a.slabs = nil, nil
}

// appendAhead adds data to a socket's read-ahead, in a pooled chunk while
// it fits (it always does when the receive caps hold).
func (p *uring) appendAhead(st *uringFD, data []byte) {
	if st.rx.ahead == nil {
		st.rx.ahead = p.ahead.get()
	}
	if len(st.rx.ahead)+len(data) > cap(st.rx.ahead) {
		grown := make([]byte, len(st.rx.ahead), len(st.rx.ahead)+len(data))
		copy(grown, st.rx.ahead)
		p.ahead.put(st.rx.ahead)
		st.rx.ahead = grown
	}
	st.rx.ahead = append(st.rx.ahead, data...)
}

// dropAhead gives a socket's read-ahead memory back: a held buffer to the
// ring at the next Wait (bytes delivered from it this round stay valid).
func (p *uring) dropAhead(st *uringFD) {
	if st.rx.held.bid >= 0 {
		p.recycle = append(p.recycle, uint16(st.rx.held.bid))
		p.unhold(st)
	}
	if st.rx.ahead != nil {
		p.ahead.put(st.rx.ahead)
		st.rx.ahead = nil
	}
}

// heldBuf is a ring buffer a socket keeps as the front of its read-ahead:
// bytes [off, off+n) of buffer bid are not delivered yet.
type heldBuf struct {
	bid int32 // -1: none
	off int
	n   int
}

// maxHeld bounds the ring buffers held as read-ahead by all sockets of a
// port, so that most of the ring stays free for arrivals. A stream whose
// consumer posts each receive after the next arrival (a bulk echo: the
// receive re-armed at delivery reads on at once) then costs no copy:
// copying out cost 11 % of the server's CPU on a 4 GiB echo.
const maxHeld = recvBufCount / 4

// aheadLen is how many bytes the socket read before its caller posted.
func (st *uringFD) aheadLen() int { return st.rx.held.n + len(st.rx.ahead) }

// keepAhead makes an arrival in buffer bid read-ahead: held in place if
// the socket has no read-ahead yet and the port holds few buffers, copied
// out otherwise (the buffer then goes back to the ring).
func (p *uring) keepAhead(st *uringFD, bid uint16, n int) {
	if st.aheadLen() == 0 && p.holding < maxHeld {
		st.rx.held = heldBuf{bid: int32(bid), n: n}
		p.holding++
		return
	}
	p.appendAhead(st, p.buf.data(bid, n))
	p.recycle = append(p.recycle, bid)
}

// serveAhead completes the posted receives that the read-ahead can: from
// a held buffer in place, else copying through the delivery arena (what
// does not fit waits for the next Wait).
func (p *uring) serveAhead() {
	keep := p.waiting[:0]
	for _, st := range p.waiting {
		if !st.rx.wanted {
			continue
		}
		copied := st.rx.held.n == 0 && len(st.rx.ahead) > 0
		if p.n == len(p.out) || (copied && p.off == len(p.arena)) {
			keep = append(keep, st)
			continue
		}
		c := Completion{Op: OpRecv, Token: st.token}
		bid := int32(-1)
		switch {
		case st.rx.held.n > 0:
			h := &st.rx.held
			n := min(h.n, st.rx.limit)
			c.Data = p.buf.data(uint16(h.bid), h.off+n)[h.off:]
			h.off += n
			h.n -= n
			if h.n == 0 {
				bid = h.bid // back to the ring at the next Wait, with the delivery
				p.unhold(st)
			}
		case copied:
			n := copy(p.arena[p.off:], st.rx.ahead[:min(len(st.rx.ahead), st.rx.limit)])
			c.Data = p.arena[p.off : p.off+n : p.off+n]
			p.off += n
			st.rx.ahead = st.rx.ahead[:copy(st.rx.ahead, st.rx.ahead[n:])]
			if len(st.rx.ahead) == 0 {
				p.ahead.put(st.rx.ahead) // an idle connection keeps no read-ahead memory
				st.rx.ahead = nil
			}
		case st.rx.end == rxEnded:
			c.Err = st.rx.endErr // end of stream: no data, no error
			st.rx.end = rxEndTold
		default:
			continue
		}
		st.rx.wanted = false
		p.emit(c, bid)
		p.keepReading(st)
	}
	p.waiting = keep
}

// unhold forgets the socket's held buffer; the caller sends it back.
func (p *uring) unhold(st *uringFD) {
	st.rx.held = heldBuf{bid: -1}
	p.holding--
}
