package engine

import "github.com/pyiocp/pyiocp/gomod/internal/poller"

// Several threads may poll one worker, as a thread pool calls
// GetQueuedCompletionStatus on one port. Two rules make that safe:
//
//   - A poll holds the worker until the caller is done with its events
//     (EndPoll): their Data lives in memory the next round reuses, so no
//     other thread may start a round while a binding still copies it.
//   - A connection is handed to one poller at a time. Once a poller has
//     taken a connection's events, the connection is held by it until the
//     same poller polls again: its later events wait (deferred, in order)
//     and its next receive is not posted, as an IOCP program posts the next
//     WSARecv only once it has handled the last one. So a connection's
//     events are never handled by two threads at once, and come in order
//     whichever threads take them.
//
// Poller 0 is the one thread that drives a worker (Run, Drain, the Python
// binding's worker threads): it holds nothing, and its polls release every
// hold (closing the manager takes over from pollers that went away).

// release ends the holds of poller pid (0: of every poller). Deferred
// events of the connections it let go are delivered from the next round.
func (w *worker) release(pid uint64) {
	if len(w.holds) == 0 {
		return
	}
	keep := w.holds[:0]
	for _, c := range w.holds {
		if pid != 0 && c.holder != pid {
			keep = append(keep, c)
			continue
		}
		c.holder = 0
		if len(c.deferred) > 0 {
			w.undefer = append(w.undefer, c)
		}
	}
	clear(w.holds[len(keep):])
	w.holds = keep
}

// blocked reports whether c's events must wait: another poller holds it,
// or older events of it wait already.
func (c *Conn) blocked() bool { return c.holder != 0 || len(c.deferred) > 0 }

// deferEvent keeps ev for later, behind c's other deferred events.
// Received bytes are copied to memory of their own, outside the Go heap
// like all event data: the memory they are in is reused next round.
func (w *worker) deferEvent(c *Conn, ev Event) {
	if ev.Kind == EventRecv && len(ev.Data) > 0 { // an empty frame has no memory
		mem, err := poller.AllocMemory(len(ev.Data))
		if err != nil {
			w.m.logf("connection %d: no memory to hold %d received bytes: %v", c.id, len(ev.Data), err)
			w.abort(c, err, true)
			return
		}
		ev.Data = mem[:copy(mem, ev.Data)]
	}
	c.deferred = append(c.deferred, ev)
	w.ndeferred++
}

// undeferAll emits, at the start of a round, the deferred events of the
// connections no poller holds, all of each connection's at once (so an
// event of a connection with deferred events is always newer than them).
// Their memory is freed the round after.
func (w *worker) undeferAll() {
	for _, c := range w.undefer {
		for _, ev := range c.deferred {
			if ev.Kind == EventRecv && len(ev.Data) > 0 {
				w.spent = append(w.spent, ev.Data)
			}
			w.out = append(w.out, ev)
		}
		w.ndeferred -= len(c.deferred)
		c.deferred = nil
	}
	clear(w.undefer)
	w.undefer = w.undefer[:0]
}

// freeSpent frees the memory of the deferred bytes handed out last round.
func (w *worker) freeSpent() {
	for _, b := range w.spent {
		poller.FreeMemory(b)
	}
	clear(w.spent)
	w.spent = w.spent[:0]
}

// take hands out the next events to poller pid: at most max (0: all). The
// events of a connection another poller holds, or with older events
// deferred, are deferred too; the other connections become pid's (unless
// pid is 0, the driver, which holds nothing).
func (w *worker) take(max int, pid uint64) []Event {
	out := w.out
	w.handed = w.pos
	if pid == 0 && w.ndeferred == 0 {
		evs := out[w.pos:]
		if max > 0 && len(evs) > max {
			evs = evs[:max]
		}
		w.pos += len(evs)
		return evs
	}
	wr, i := w.pos, w.pos
	for i < len(out) && (max <= 0 || wr-w.pos < max) {
		ev := out[i]
		i++
		if c := ev.Conn; c != nil {
			if (c.holder != 0 && c.holder != pid) || len(c.deferred) > 0 {
				w.deferEvent(c, ev)
				continue
			}
			if pid != 0 && c.holder == 0 {
				c.holder = pid
				w.holds = append(w.holds, c)
			}
		}
		out[wr] = ev
		wr++
	}
	n := copy(out[wr:], out[i:])
	clear(out[wr+n:])
	w.out = out[:wr+n]
	evs := out[w.pos:wr]
	w.pos = wr
	return evs
}
