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
		if c.byName != nil && c.byName.nextAt > 0 {
			earliest(c.byName.nextAt) // the next address's attempt (race.go)
		}
	case stateOpen, stateClosing:
		if c.proxyw != nil {
			earliest(c.openedAt + int64(w.m.proxyTimeout()))
		}
		if !c.outbound && !c.gotData && o.acceptTimeout > 0 {
			earliest(c.openedAt + int64(o.acceptTimeout))
		}
		if idle := w.idleTimeoutOf(c); idle > 0 {
			earliest(c.lastActive + int64(idle))
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
	if w.nextAttemptDue(c) && c.state >= stateCanceling {
		return
	}
	if t := c.wroteAt.Load(); t > c.lastActive {
		c.lastActive = t // SendNow wrote, on another thread
	}
	if err := w.timedOut(c); err != nil {
		if err != errProxyTimeout { // counted as a PROXY error (proxyEnd)
			w.stats.timedOut.Add(1)
		}
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
	case c.proxyw != nil && w.now >= c.openedAt+int64(w.m.proxyTimeout()):
		return errProxyTimeout
	case !c.outbound && !c.gotData && o.acceptTimeout > 0 && w.now >= c.openedAt+int64(o.acceptTimeout):
		return ErrAcceptTimeout
	case w.idleTimeoutOf(c) > 0 && w.now >= c.lastActive+int64(w.idleTimeoutOf(c)):
		return ErrIdleTimeout
	}
	return nil
}

// connTimers is a worker's heap of connections keyed by their next deadline
// (connect, accept, idle or close timeout). There is no goroutine or
// runtime timer per connection; the worker's wait is bounded by the
// earliest deadline. Activity does not touch the heap: a deadline that
// fires early is recomputed from the connection's last activity.
type connTimers struct{ h minHeap[*Conn] }

func (c *Conn) key() int64  { return c.deadline }
func (c *Conn) place() *int { return &c.heapIdx }

func (t *connTimers) peek() *Conn {
	c, _ := t.h.peek()
	return c
}

// set puts c in the heap at deadline d, moves it, or removes it (d == 0).
func (t *connTimers) set(c *Conn, d int64) {
	switch {
	case d == 0:
		t.remove(c)
	case c.heapIdx < 0:
		c.deadline = d
		t.h.push(c)
	default:
		c.deadline = d
		t.h.fix(c)
	}
}

func (t *connTimers) remove(c *Conn) {
	t.h.remove(c)
	c.deadline = 0
}
