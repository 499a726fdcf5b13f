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
	if st.ahead == nil {
		st.ahead = p.ahead.get()
	}
	if len(st.ahead)+len(data) > cap(st.ahead) {
		grown := make([]byte, len(st.ahead), len(st.ahead)+len(data))
		copy(grown, st.ahead)
		p.ahead.put(st.ahead)
		st.ahead = grown
	}
	st.ahead = append(st.ahead, data...)
}

// dropAhead gives a socket's read-ahead memory back.
func (p *uring) dropAhead(st *uringFD) {
	if st.ahead != nil {
		p.ahead.put(st.ahead)
		st.ahead = nil
	}
}
