package engine

import "github.com/pyiocp/pyiocp/gomod/internal/poller"

// flush posts the connection's pending bytes. One send is outstanding per
// socket, and a send is posted only when there is something to send. The
// worker flushes what its handlers queued at the start of its next round,
// so every send a batch made to a connection leaves in one write, and (in
// Python) the write happens with the GIL released.
//
// c.mu is not held across the post (a write of up to a MiB on epoll and
// IOCP): other threads' Send, Pending and Closed would wait for it, in
// Python holding the GIL. The send slot is claimed first (c.sending), so
// meanwhile a Send only appends (appending never moves queued bytes) and
// asks for no flush; the loop below sees what it appended.
func (w *worker) flush(c *Conn) {
	c.mu.Lock()
	c.flushQueued = false
	if c.sending || (c.state != stateOpen && c.state != stateClosing) {
		sending := c.sending
		c.mu.Unlock()
		if !sending && c.state == stateCanceling {
			w.settle(c) // a SendNow's write, which the cancel waited for, ended
		}
		return
	}
	var err error
	for c.sendq.len() > 0 {
		file := c.sendq.front()
		var bufs [][]byte
		var span int
		if file == nil {
			bufs = c.sendq.views(w.iov[:0], maxSendViews)
		} else {
			span = c.sendq.fileSpan() // under c.mu: a Send may append meanwhile
		}
		c.sending = true
		c.mu.Unlock()
		var n int
		var done bool
		var perr error
		if file != nil {
			n, done, perr = w.postFile(c, file, span)
		} else {
			n, done, perr = w.p.PostSend(c.ref, bufs)
			clear(bufs)
		}
		c.mu.Lock()
		if perr != nil {
			c.sending = false
			err = perr
			break
		}
		if !done {
			break // sendDone ends the claim
		}
		c.sending = false
		if file != nil && n == 0 {
			err = ErrFileShrunk
			break
		}
		w.sent(c, n)
	}
	shut := err == nil && c.writeShut && !c.shutDone && c.sendq.len() == 0 && !c.sending && !c.tlsHandshaking()
	c.mu.Unlock()
	switch {
	case err == ErrFileShrunk:
		w.abort(c, err, true)
	case err != nil:
		w.abort(c, err, false)
	case shut:
		c.shutDone = true
		if err := poller.ShutdownWrite(c.fd); err != nil {
			w.abort(c, err, false)
		} else if c.eof {
			w.closeGracefully(c) // both directions are done
		}
	case c.state == stateClosing:
		w.settle(c)
	}
}

// sent accounts n written bytes. Called with c.mu held.
func (w *worker) sent(c *Conn, n int) {
	if n <= 0 {
		return
	}
	c.sendq.consume(n)
	w.m.pendingSend.Add(-int64(n))
	w.stats.bytesOut.Add(uint64(n))
	c.lastActive = w.now
	if w.m.mask&MaskSend != 0 && c.announced && (c.tlsc() == nil || c.tlsc().up()) {
		// Not for a TLS handshake's bytes: the application's connection
		// is not up yet (an outbound one's EventConnect comes after).
		w.emit(Event{Kind: EventSend, Conn: c, N: n})
	}
	if c.drainArmed && c.sendq.len() <= w.m.lowWater {
		c.drainArmed = false
		if w.m.mask&MaskDrain != 0 {
			w.emit(Event{Kind: EventDrain, Conn: c})
		}
	}
}

func (w *worker) sendDone(c *Conn, cpl *poller.Completion) {
	c.mu.Lock()
	c.sending = false
	file := c.sendq.front()
	if cpl.Err == nil {
		w.sent(c, cpl.N)
	}
	c.mu.Unlock()
	switch {
	case c.state == stateCanceling || cpl.Err == poller.ErrCanceled:
		// Being canceled: this send is over, whatever it reports (a
		// partial write, ErrCanceled, or the error the peer's reset gave it
		// before the cancel reached it): the close may go on.
		w.settle(c)
	case file != nil && !file.copy && poller.SendFileRefused(cpl.Err):
		file.copy = true // the kernel will not send it without a copy
		w.flush(c)
	case cpl.Err != nil:
		w.abort(c, cpl.Err, false)
	case file != nil && cpl.N == 0:
		w.abort(c, ErrFileShrunk, true)
	default:
		w.flush(c)
	}
}
