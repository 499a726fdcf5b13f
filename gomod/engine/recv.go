package engine

import "github.com/pyiocp/pyiocp/gomod/internal/poller"

func (w *worker) recvDone(c *Conn, cpl *poller.Completion) {
	c.recvPosted = false
	switch {
	case cpl.Err == poller.ErrCanceled || c.state >= stateCanceling:
		w.settle(c)
		return
	case cpl.Err != nil:
		w.abort(c, cpl.Err, false)
		return
	case len(cpl.Data) == 0:
		w.peerEOF(c)
		return
	}
	w.stats.bytesIn.Add(uint64(len(cpl.Data)))
	w.received(c, cpl.Data)
}

// received takes bytes read from c's socket (or that came with its accept).
func (w *worker) received(c *Conn, data []byte) {
	n := len(data)
	c.lastActive = w.now
	if c.proxyw != nil {
		w.proxyRecv(c, data)
		return
	}
	c.gotData = true
	if c.state == stateClosing {
		// The application closed: what still arrives is read and dropped,
		// so a peer that writes before it reads is not blocked while the
		// last bytes go out; but only up to the receive buffer limit, then
		// reading stops and TCP pushes back (a peer that never reads must
		// not keep a core busy until close_timeout).
		c.dropped += n
		if c.dropped < w.m.opts.recvLimit {
			w.rearm = append(w.rearm, c)
		}
		return
	}
	if c.tlsc() != nil {
		var ok bool
		if data, ok = w.tlsRecv(c, data); !ok {
			return
		}
	}
	if c.held.len() > 0 || c.isPaused() {
		c.held.append(data)
		w.resume = append(w.resume, c)
		return
	}
	if !w.deliver(c, data) {
		w.resume = append(w.resume, c) // to close it next round
		return
	}
	if c.tlsc() != nil && (c.tlsc().more || c.eof) {
		w.resume = append(w.resume, c) // deliverHeld goes on
		return
	}
	w.rearm = append(w.rearm, c)
}

// deliver hands received bytes to the application: as they came, or
// split into frames. False when a bad frame came (the connection closes
// next round).
func (w *worker) deliver(c *Conn, data []byte) bool {
	if c.fr != nil {
		return w.feed(c, data)
	}
	w.emit(Event{Kind: EventRecv, Conn: c, Data: data})
	return true
}

// rearmAll posts the next receive of every connection that received last
// round. Deciding now, after the handlers ran, lets a pause_reading() made
// in on_recv stop the very next read. A connection a poller holds waits
// until it polls again (pollers.go).
func (w *worker) rearmAll() {
	keep := w.rearm[:0]
	for _, c := range w.rearm {
		if c.blocked() {
			keep = append(keep, c)
			continue
		}
		w.postRecv(c)
	}
	clear(w.rearm[len(keep):])
	w.rearm = keep
}

// postRecv posts a receive unless one is outstanding, the stream ended,
// the application paused reading, held data waits to be delivered (the
// receive buffer is not empty, so it is not read further: lesson 1), or a
// bad frame came. The frame in progress of a framed connection is not
// data that waits: it needs the next bytes, and counts against the limit.
func (w *worker) postRecv(c *Conn) {
	if c.recvPosted || c.eof || (c.state != stateOpen && c.state != stateClosing) {
		return
	}
	if c.state == stateOpen && (c.held.len() > 0 || c.frameErr != nil || c.isPaused()) {
		return
	}
	room := w.m.opts.recvLimit - c.held.len()
	if c.fr != nil && c.state == stateOpen {
		room -= c.fr.held()
	}
	if c.tlsc() != nil && c.state == stateOpen {
		// Ciphertext not yet decrypted counts too: a peer flooding a
		// handshake cannot make the session buffer without bound.
		if room -= c.tlsc().s.Buffered(); room <= 0 {
			return
		}
	}
	if err := w.p.PostRecv(c.ref, min(maxRead, room)); err != nil {
		w.abort(c, err, false)
		return
	}
	c.recvPosted = true
}

// deliverHeld hands data received while paused to the application once it
// resumes, in order and before anything newer is read.
func (w *worker) deliverHeld() {
	keep := w.resume[:0]
	for _, c := range w.resume {
		if c.state == stateOpen && c.frameErr != nil {
			// A bad frame came last round: the frames before it have
			// been handled (their answers are queued), no new framing
			// took the bytes back.
			if c.closeErr == nil {
				c.closeErr = c.frameErr
			}
			w.closeGracefully(c)
			continue
		}
		if c.state != stateOpen || c.isPaused() {
			continue
		}
		if c.blocked() {
			keep = append(keep, c) // a poller holds it: after it polls again
			continue
		}
		delivered := false
		if c.held.len() > 0 {
			buf := w.spill.take(c.held.len())
			if len(buf) == 0 {
				keep = append(keep, c) // spill memory used up: next round
				continue
			}
			n := c.held.read(buf)
			delivered = true
			if !w.deliver(c, buf[:n:n]) {
				keep = append(keep, c) // to close it next round
				continue
			}
			if c.held.len() > 0 {
				keep = append(keep, c)
				continue
			}
		}
		if c.tlsc() != nil && c.tlsc().more {
			// Records the session holds, decrypted now the arena has room.
			plain, ok := w.decrypt(c)
			if c.state != stateOpen {
				continue // a broken record aborted it
			}
			delivered = delivered || ok
			if ok && !w.deliver(c, plain) || c.tlsc().more {
				keep = append(keep, c)
				continue
			}
		}
		if c.eof && !c.eofTold {
			if delivered {
				// Told next round: with no EOF handler it closes the
				// connection, and the handlers of the bytes just
				// delivered may still answer them.
				keep = append(keep, c)
				continue
			}
			if w.endsInFrame(c) {
				keep = append(keep, c) // to close it next round
				continue
			}
			w.eofReached(c)
		}
		w.postRecv(c)
	}
	clear(w.resume[len(keep):])
	w.resume = keep
}

func (w *worker) peerEOF(c *Conn) {
	c.eof = true
	if c.state == stateClosing {
		w.settle(c)
		return
	}
	if c.proxyw != nil {
		w.abort(c, &ProxyError{errProxyMissing}, true) // ended before its header did
		return
	}
	if c.tlsc() != nil && !c.tlsc().up() {
		// The client may have sent its last handshake message and its
		// request, then shut down: the handshake reads what came, and
		// tlsReady goes on from there.
		c.tlsc().s.FeedEOF()
		return
	}
	if c.held.len() > 0 || c.isPaused() || c.tlsc() != nil && c.tlsc().more {
		return // told after the held data, on resume
	}
	if w.endsInFrame(c) {
		w.resume = append(w.resume, c) // to close it next round
		return
	}
	w.eofReached(c)
}

// eofReached reports the peer's FIN. Half-close is kept apart from close: a
// handler that takes EOF may go on sending; without one, the connection
// closes once its pending bytes are sent.
func (w *worker) eofReached(c *Conn) {
	c.eofTold = true
	if w.m.mask&MaskEOF != 0 {
		w.emit(Event{Kind: EventEOF, Conn: c})
		if c.shutDone {
			w.closeGracefully(c)
		}
		return
	}
	w.closeGracefully(c)
}
