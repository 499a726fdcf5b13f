package engine

import "github.com/pyiocp/pyiocp/gomod/internal/poller"

// An endpoint on its worker: registered with the port, its receives kept
// posted (each one that completes is posted again at once: the port
// reuses the datagram's buffer only after the round that delivered it),
// its queued datagrams sent, and its close, which is exactly once:
//
//	closeEndpoint: no more datagrams are delivered; what SendTo queued is
//	sent, then
//	cancelEndpoint: the receives (and a send cut short by the shutdown
//	deadline) are canceled and complete once each; after the last,
//	finishEndpoint: the socket is closed, what is still queued dropped,
//	and Done closed.

// endpointBits mark an endpoint's token (token.go); bits 0-31 index the
// worker's endpoints.
const endpointBits = listenerBit | raceBit

func (w *worker) startEndpoint(e *Endpoint) {
	idx := freeSlot(&w.endpoints)
	e.token = endpointBits | uint64(idx)
	if w.shutdown || e.asked.Load() {
		w.finishEndpoint(e)
		return
	}
	ref, err := w.p.BindDatagram(e.fd, e.token, e.size, e.receives)
	if err != nil {
		w.m.logf("endpoint %v: %v", e, err)
		w.finishEndpoint(e)
		return
	}
	e.ref = ref
	w.endpoints[idx] = e
	w.nendpoints++
	w.postRecvFrom(e, e.receives)
	w.flushEndpoint(e) // what SendTo queued before the worker took it up
}

// owns reports whether e is registered with w's port.
func (w *worker) owns(e *Endpoint) bool {
	idx := int(e.token &^ endpointBits)
	return e.token != 0 && idx < len(w.endpoints) && w.endpoints[idx] == e
}

func (w *worker) postRecvFrom(e *Endpoint, n int) {
	if err := w.p.PostRecvFrom(e.ref, n); err != nil {
		w.m.logf("endpoint %v: receive: %v", e, err)
		return
	}
	e.outstanding += n
}

// endpointDone takes one completion of an endpoint.
func (w *worker) endpointDone(cpl *poller.Completion) {
	idx := int(cpl.Token &^ endpointBits)
	if idx >= len(w.endpoints) || w.endpoints[idx] == nil {
		w.stats.stray.Add(1)
		return
	}
	e := w.endpoints[idx]
	switch cpl.Op {
	case poller.OpRecvFrom:
		w.recvFromDone(e, cpl)
	case poller.OpSendTo:
		w.sendToDone(e, cpl)
	}
}

func (w *worker) recvFromDone(e *Endpoint, cpl *poller.Completion) {
	e.outstanding--
	if e.closing || cpl.Err == poller.ErrCanceled {
		w.settleEndpoint(e)
		return
	}
	w.postRecvFrom(e, 1)
	switch {
	case cpl.Err == poller.ErrTruncated:
		w.stats.datagramsTruncated.Add(1)
		w.emit(Event{Kind: EventDatagram, Endpoint: e, Addr: cpl.Peer, N: cpl.N,
			Err: &TruncatedError{Size: cpl.N, Limit: e.size}})
	case cpl.Err != nil:
		// An error the socket reported (ICMP port unreachable after a
		// connected endpoint's send, say): counted; receiving goes on.
		w.stats.datagramErrors.Add(1)
	default:
		w.stats.datagramsIn.Add(1)
		w.stats.bytesIn.Add(uint64(len(cpl.Data)))
		w.emit(Event{Kind: EventDatagram, Endpoint: e, Data: cpl.Data, Addr: cpl.Peer, N: len(cpl.Data)})
	}
}

// flushEndpoint posts what SendTo queued, at most poller.MaxSendTo
// datagrams a post, one send outstanding at a time; e.mu is not held
// across the post (SendTo only appends meanwhile).
func (w *worker) flushEndpoint(e *Endpoint) {
	if !w.owns(e) {
		return // closed before its worker could register it
	}
	e.mu.Lock()
	e.flushQueued = false
	for !e.sending && !e.canceled && len(e.queue) > 0 {
		k := min(len(e.queue), poller.MaxSendTo)
		batch := e.queue[:k]
		e.sending = true
		e.mu.Unlock()
		n, done, err := w.p.PostSendTo(e.ref, batch)
		e.mu.Lock()
		if !done && err == nil {
			e.inflight = k
			break // sendToDone takes it from here
		}
		e.sending = false
		if !done {
			n = k // the post failed: its datagrams are dropped
		}
		if err != nil {
			w.stats.datagramErrors.Add(1)
		}
		w.sentDatagrams(e, n)
	}
	idle := !e.sending && len(e.queue) == 0
	e.mu.Unlock()
	if e.closing && idle {
		w.cancelEndpoint(e)
	}
}

// sentDatagrams drops the first n queued datagrams, sent (or failed).
// Called with e.mu held.
func (w *worker) sentDatagrams(e *Endpoint, n int) {
	bytes := 0
	for i, d := range e.queue[:n] {
		bytes += len(d.Data)
		e.bufs[i].free()
	}
	k := copy(e.queue, e.queue[n:])
	clear(e.queue[k:])
	e.queue = e.queue[:k]
	copy(e.bufs, e.bufs[n:])
	clear(e.bufs[k:])
	e.bufs = e.bufs[:k]
	e.pending -= bytes
	w.m.pendingSend.Add(-int64(bytes))
	w.stats.datagramsOut.Add(uint64(n))
	w.stats.bytesOut.Add(uint64(bytes))
}

func (w *worker) sendToDone(e *Endpoint, cpl *poller.Completion) {
	e.mu.Lock()
	e.sending = false
	n := min(cpl.N, e.inflight)
	if cpl.Err == poller.ErrCanceled {
		n = e.inflight // cut short by the close: dropped with the rest
	} else if cpl.Err != nil {
		w.stats.datagramErrors.Add(1)
	}
	e.inflight = 0
	w.sentDatagrams(e, n)
	e.mu.Unlock()
	if e.canceled {
		w.settleEndpoint(e)
		return
	}
	w.flushEndpoint(e)
}

// closeEndpoint starts an endpoint's close (Close, or the shutdown).
func (w *worker) closeEndpoint(e *Endpoint) {
	if e.closing || !w.owns(e) {
		return
	}
	e.closing = true
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	w.flushEndpoint(e) // cancels at once when nothing is queued
}

// cancelEndpoint makes every outstanding operation complete.
func (w *worker) cancelEndpoint(e *Endpoint) {
	if e.canceled {
		return
	}
	e.closing, e.canceled = true, true
	w.p.Cancel(e.ref)
	w.settleEndpoint(e)
}

// settleEndpoint finishes a canceled endpoint after its last completion.
func (w *worker) settleEndpoint(e *Endpoint) {
	if !e.canceled || e.outstanding > 0 || e.sending {
		return
	}
	w.p.Unregister(e.ref)
	w.endpoints[e.token&^endpointBits] = nil
	w.nendpoints--
	w.finishEndpoint(e)
}

// finishEndpoint closes the socket, drops what is still queued and
// forgets the endpoint.
func (w *worker) finishEndpoint(e *Endpoint) {
	poller.CloseSock(e.fd)
	e.mu.Lock()
	e.closed = true
	w.m.pendingSend.Add(-int64(e.pending))
	for _, b := range e.bufs {
		b.free()
	}
	clear(e.queue)
	clear(e.bufs)
	e.queue, e.bufs, e.pending = nil, nil, 0
	e.mu.Unlock()
	w.m.forgetEndpoint(e)
	close(e.done)
}

// dropEndpointsLost closes a lost worker's endpoints (lost.go).
func (w *worker) dropEndpointsLost() {
	for i, e := range w.endpoints {
		if e != nil {
			w.endpoints[i] = nil
			w.nendpoints--
			w.finishEndpoint(e)
		}
	}
}
