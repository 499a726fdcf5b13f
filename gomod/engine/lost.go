package engine

// A worker whose port is lost (poller.ErrPortLost: its io_uring is a
// single issuer and the thread that drove it is gone) can post nothing
// more and harvest nothing more. It is given up rather than retried
// forever: the port is closed first, which ends in the kernel whatever was
// still in flight, then every listener and connection of the worker is
// closed here, without waiting for completions that will never come. Each
// connection's EventClose carries the error; then the worker quits.

func (w *worker) abandon(err error) {
	w.m.logf("worker %d: %v: closing its %d connections and %d listeners", w.idx, err, w.conns.n, w.nlisteners)
	w.lost = true
	w.p.Close()
	// What the inbox still brings is refused as after Shutdown: an adopted
	// connection is dropped, a connect aborted, a listener closed.
	w.shutdown = true
	w.deadlineHit = true
	for i, l := range w.listeners {
		if l != nil {
			w.listeners[i] = nil
			w.nlisteners--
			w.closeListenSock(l)
		}
	}
	w.dropEndpointsLost()
	for c := w.conns.head; c != nil; {
		next := c.next
		w.dropLost(c, err)
		c = next
	}
	w.checkQuit()
}

// dropLost ends c at once: none of its operations will complete.
func (w *worker) dropLost(c *Conn, err error) {
	c.registered = false // closed with the port: nothing to release there
	c.recvPosted, c.connecting = false, false
	w.closeAttemptsLost(c)
	c.mu.Lock()
	c.sending = false
	c.mu.Unlock()
	if c.closeErr == nil {
		c.closeErr = err
	}
	c.rst = true
	c.markClosing(closeAbort)
	c.state = stateCanceling
	w.finalize(c)
}
