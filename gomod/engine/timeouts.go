package engine

// deadlineOf is the connection's next deadline (0: none): the connect
// timeout while connecting; then accept_timeout until the first byte of an
// accepted connection, and idle_timeout since the last byte either way;
// close_timeout since a graceful close began.
func (w *worker) deadlineOf(c *Conn) int64 {
	o := &w.m.opts
	var d int64
	earliest := func(at int64) {
		if d == 0 || at < d {
			d = at
		}
	}
	if c.closingAt > 0 && o.closeTimeout > 0 && c.state < stateCanceling {
		earliest(c.closingAt + int64(o.closeTimeout))
	}
	switch c.state {
	case stateConnecting:
		if c.connectBy > 0 {
			earliest(c.connectBy)
		}
	case stateOpen, stateClosing:
		if !c.outbound && !c.gotData && o.acceptTimeout > 0 {
			earliest(c.openedAt + int64(o.acceptTimeout))
		}
		if o.idleTimeout > 0 {
			earliest(c.lastActive + int64(o.idleTimeout))
		}
	}
	return d
}

func (w *worker) schedule(c *Conn) { w.timers.set(c, w.deadlineOf(c)) }

// fire handles a connection whose deadline came: it times out, or (the
// deadline was computed before later activity) gets its next deadline.
func (w *worker) fire(c *Conn) {
	if c.state >= stateCanceling {
		return
	}
	if err := w.timedOut(c); err != nil {
		w.stats.timedOut.Add(1)
		w.abort(c, err, true)
		return
	}
	w.schedule(c)
}

// timedOut is the timeout c has reached, if any.
func (w *worker) timedOut(c *Conn) error {
	o := &w.m.opts
	switch {
	case c.closingAt > 0 && o.closeTimeout > 0 && w.now >= c.closingAt+int64(o.closeTimeout):
		return ErrCloseTimeout
	case c.state == stateConnecting:
		if c.connectBy > 0 && w.now >= c.connectBy {
			return ErrConnectTimeout
		}
	case !c.outbound && !c.gotData && o.acceptTimeout > 0 && w.now >= c.openedAt+int64(o.acceptTimeout):
		return ErrAcceptTimeout
	case o.idleTimeout > 0 && w.now >= c.lastActive+int64(o.idleTimeout):
		return ErrIdleTimeout
	}
	return nil
}
