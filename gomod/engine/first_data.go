package engine

import "time"

// Accepts with the first data: a listener whose accepts complete only once
// the peer has sent something, so that a peer that connects and stays
// silent costs no accept, no connection and no wake-up (IOCP's AcceptEx
// with a receive buffer; Linux's TCP_DEFER_ACCEPT). The handler sees
// EventAccept, then EventRecv with those bytes, as without it.

// DefaultFirstDataTimeout is how long a first-data listener waits for a
// silent peer's first bytes when the manager has no accept timeout.
const DefaultFirstDataTimeout = 10 * time.Second

// WithFirstData makes the listener accept a connection only once its
// peer's first bytes came. A peer silent for the manager's accept timeout
// (DefaultFirstDataTimeout without one) is dropped: on Windows unseen (its
// accept is swept, SO_CONNECT_TIME); on Linux the kernel holds it that
// long, then hands it over, and the accept timeout ends it.
func WithFirstData(on bool) ListenOption {
	return func(o *listenOptions) error { o.firstData = on; return nil }
}

// firstDataTimeout is how long a first-data listener waits for a peer's
// first bytes.
func (m *Manager) firstDataTimeout() time.Duration {
	if m.opts.acceptTimeout > 0 {
		return m.opts.acceptTimeout
	}
	return DefaultFirstDataTimeout
}

// startFirstData sets up l's accepts on its worker's port; a failure is
// logged and the listener goes on with plain accepts.
func (w *worker) startFirstData(l *Listener) {
	sweep, err := w.p.FirstData(l.ref, w.m.firstDataTimeout())
	if err != nil {
		w.m.logf("listener %v: first data: %v; accepting without it", l, err)
		return
	}
	l.sweepEvery = int64(sweep)
	l.sweepAt = w.now + l.sweepEvery
}

// sweepAccepts drops the silent peers of first-data listeners whose
// backend holds them in posted accepts.
func (w *worker) sweepAccepts() {
	for _, l := range w.listeners {
		if l != nil && l.sweepEvery > 0 && !l.closing && w.now >= l.sweepAt {
			w.p.SweepAccepts(l.ref)
			l.sweepAt = w.now + l.sweepEvery
		}
	}
}

// deliverFirst hands an adopted connection's first bytes, which came with
// its accept, on as a receive would: those of a connection waiting for its
// PROXY header to the header; a TLS connection's to its session (which
// copies them); a plaintext one's are held, and deliverHeld passes
// them on from the worker's spill memory (what the application gets lives
// outside the Go heap: c.first does not).
func (w *worker) deliverFirst(c *Conn) {
	data := c.first
	if data == nil || c.state != stateOpen {
		return
	}
	c.first = nil
	w.stats.bytesIn.Add(uint64(len(data)))
	if c.proxyw != nil || c.tlsc() != nil {
		w.received(c, data) // a header's, or the session's, which copies them
		return
	}
	c.gotData = true
	c.held.append(data)
	w.resume = append(w.resume, c)
}
