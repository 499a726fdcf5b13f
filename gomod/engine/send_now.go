package engine

import "github.com/pyiocp/pyiocp/gomod/internal/poller"

// SendNow is Send for a thread or goroutine that is not the connection's
// worker (a thread pool's reply, say). When nothing is queued or being
// written, it writes p at once on the caller's thread, with one system call
// that never blocks, instead of waking the worker to write it; whatever the
// socket does not take is left to the worker, in order, as Send leaves it.
// Its errors are Send's.
//
// From a handler use Send: the worker writes everything one round of
// handlers queued for a connection in one system call, at the start of its
// next round. SendNow is Send where the OS has no WriteNow (Windows), for
// a p over a chunk (16 KiB: no caller copies megabytes into the kernel on
// its own thread; in Python it would hold the GIL meanwhile), and while
// EventSend is produced (a Handler's OnSend counts every write on its
// worker; WithEvents without MaskSend turns that off).
func (c *Conn) SendNow(p []byte) error { return c.sendNow(nil, p, nil) }

// SendFrameNow is SendFrame as SendNow is Send: the frame written at once
// on the caller's thread when nothing is queued before it.
func (c *Conn) SendFrameNow(payload []byte) error {
	var hdr [8]byte
	before, after, err := c.frameParts(payload, &hdr)
	if err != nil {
		return err
	}
	return c.sendNow(before, payload, after)
}

// sendNow writes the parts a, p, z at once if it can, else queues them as
// sendParts does (with its errors).
func (c *Conn) sendNow(a, p, z []byte) error {
	total := len(a) + len(p) + len(z)
	if !poller.CanWriteNow || total > chunkSize || c.m.mask&MaskSend != 0 || c.tlsc() != nil {
		return c.sendParts(a, p, z)
	}
	c.sockMu.RLock() // finalize does not close the socket meanwhile
	defer c.sockMu.RUnlock()
	c.mu.Lock()
	if !c.opened || c.sending || c.flushQueued || c.sendq.len() > 0 || c.drainArmed ||
		total == 0 || total > c.m.opts.sendLimit || c.req != closeNone || c.writeShut || c.freed {
		c.mu.Unlock()
		return c.sendParts(a, p, z) // the usual way, with its errors
	}
	// Queued first, so that what other threads send meanwhile goes behind
	// it; the send slot is claimed, so the worker posts nothing meanwhile.
	c.sendq.append(a)
	c.sendq.append(p)
	c.sendq.append(z)
	c.m.pendingSend.Add(int64(total))
	c.sending = true
	var one [1][]byte
	bufs := c.sendq.views(one[:0], 1) // the parts, whole: a queue empty before starts a fresh chunk
	c.mu.Unlock()
	n, err := poller.WriteNow(c.fd, bufs[0])
	c.mu.Lock()
	c.sending = false
	if n > 0 {
		c.sendq.consume(n)
		c.m.pendingSend.Add(-int64(n))
		c.w.stats.bytesOut.Add(uint64(n))
		c.wroteAt.Store(c.m.clock())
	}
	if c.sendq.len() > c.m.lowWater {
		c.drainArmed = true
	}
	// The worker takes over: bytes the socket did not take (or that others
	// queued meanwhile), an error to report (its flush meets it again), or
	// a close or shutdown that waited for this write to end.
	wake := (c.sendq.len() > 0 || err != nil || c.req != closeNone || c.writeShut) && !c.flushQueued
	if wake {
		c.flushQueued = true
	}
	c.mu.Unlock()
	if wake {
		c.w.enqueue(request{kind: reqFlush, c: c})
	}
	return nil
}
