package engine

import "github.com/pyiocp/pyiocp/gomod/internal/poller"

// How a connection ends (all on its worker):
//
//	closeGracefully: stateClosing; pending bytes are flushed, then
//	abort/cancel: stateCanceling; every outstanding operation is canceled
//	and completes once; after the last one,
//	finalize: the socket is closed, buffers go back to their pools,
//	stateClosed, and EventClose is emitted exactly once.
//
// The connection's slot is freed one round later, after the handler has
// seen EventClose, so a binding's slot-indexed objects never see a new
// connection in the slot of one whose close it has not yet delivered.

// closeGracefully closes after the pending bytes are written.
func (w *worker) closeGracefully(c *Conn) {
	switch c.state {
	case stateClosing, stateCanceling, stateClosed:
		return
	}
	c.markClosing(closeGraceful)
	if c.closingAt == 0 {
		c.closingAt = max(w.now, 1)
	}
	if c.state == stateConnecting {
		c.mu.Lock()
		pending := c.sendq.len() > 0
		c.mu.Unlock()
		if !pending && !c.tlsEarly() {
			w.abort(c, nil, false) // nothing to deliver: stop connecting now
			return
		}
		w.schedule(c) // with bytes queued: closes once connected and flushed
		return
	}
	if c.announced && c.tlsHandshaking() {
		// An outbound or upgraded connection: closed after the handshake,
		// once what was sent before is written (tlsReady); close_timeout
		// runs meanwhile.
		w.schedule(c)
		return
	}
	c.state = stateClosing
	c.tlsClosing()
	w.schedule(c)
	w.flush(c)
}

// abort ends the connection now, dropping pending bytes. err (nil for an
// application's abort) is what EventClose reports; rst closes with a reset.
func (w *worker) abort(c *Conn, err error, rst bool) {
	if c.state == stateCanceling || c.state == stateClosed {
		return
	}
	if err != nil && c.closeErr == nil {
		c.closeErr = err
	}
	c.rst = rst
	c.markClosing(closeAbort)
	w.cancel(c)
}

// markClosing makes Send fail from now on, whoever started the close.
func (c *Conn) markClosing(r closeReq) {
	c.mu.Lock()
	if c.req < r {
		c.req = r
	}
	c.mu.Unlock()
}

func (w *worker) cancel(c *Conn) {
	c.state = stateCanceling
	if c.registered {
		w.p.Cancel(c.ref)
	}
	w.cancelAttempts(c)
	w.settle(c)
}

// settle advances a closing connection as far as its outstanding
// operations allow.
func (w *worker) settle(c *Conn) {
	switch c.state {
	case stateClosing:
		c.mu.Lock()
		busy := c.sending || c.sendq.len() > 0
		c.mu.Unlock()
		if busy {
			return
		}
		if c.dropped >= w.m.opts.recvLimit && !c.shutDone {
			// Reading stopped with the peer still sending: closing with
			// unread bytes resets the connection. A FIN first lets the
			// peer read everything up to it; only its writes then fail.
			c.shutDone = true
			poller.ShutdownWrite(c.fd)
		}
		w.cancel(c)
	case stateCanceling:
		c.mu.Lock()
		sending := c.sending
		c.mu.Unlock()
		if !sending && !c.recvPosted && !c.connecting && (c.byName == nil || len(c.byName.racing) == 0) {
			w.finalize(c)
		}
	}
}

// finalize frees the connection's resources, exactly once, after its last
// outstanding operation has completed.
func (w *worker) finalize(c *Conn) {
	c.mu.Lock()
	c.freed = true
	c.finalErr = c.closeErr
	pool := c.pool
	dropped := c.sendq.len()
	c.sendq.reset()
	paused := c.paused.Swap(false)
	c.mu.Unlock()
	if pool != nil {
		pool.gone(c, c.closeErr)
	}
	w.tlsEnd(c)
	w.proxyEnd(c)
	w.cancelTimers(c)
	if c.byName != nil {
		c.byName.endLookup() // a lookup still running has nobody to tell
	}
	c.sockMu.Lock() // no socket option call is using the socket
	switch {
	case c.registered:
		w.p.Release(c.ref, c.rst)
		c.registered = false
	case c.fd == poller.NoSock: // a ConnectHost that never connected (its attempts have their own sockets)
	case c.rst:
		poller.AbortSock(c.fd)
	default:
		poller.CloseSock(c.fd)
	}
	c.sockMu.Unlock()
	w.m.pendingSend.Add(-int64(dropped))
	if paused {
		w.m.pausedReading.Add(-1)
	}
	c.held.reset()
	c.state = stateClosed
	w.timers.remove(c)
	w.conns.remove(c)
	w.m.nconns.Add(-1)
	w.freeing = append(w.freeing, c)
	if c.announced {
		w.stats.closed.Add(1)
		w.emit(Event{Kind: EventClose, Conn: c, Err: c.closeErr})
	}
}
