package engine

import (
	"fmt"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// WithFraming splits the incoming bytes of every connection the listener
// accepts with f (see Framing).
func WithFraming(f Framing) ListenOption {
	return func(o *listenOptions) error {
		f, err := cloneFraming(f)
		o.framing = f
		return err
	}
}

// SetFraming splits c's incoming bytes with f from now on (nil: no
// framing, each EventRecv carries what a read brought). It applies to the
// bytes the worker has not yet split: a frame in progress is split again
// with f. Frames already split and waiting to be handed out keep the old
// framing; to switch exactly after a frame (a text handshake, then binary
// frames), call SetFramingInBatch from the handling of that frame.
// Safe from any thread; c's frames sent with SendFrame use f at once.
func (c *Conn) SetFraming(f Framing) error {
	f, err := c.setSendFraming(f)
	if err != nil {
		return err
	}
	c.w.enqueue(request{kind: reqFraming, c: c, v: f})
	return nil
}

// SetFramingInBatch is SetFraming for the thread that drives c's worker
// (worker: its index; poller 0 of PollShared, which it holds) while it
// handles event k of the events its last poll returned: c's bytes after
// that event are split again with f, those of its later EventRecv events
// in the batch and the ones waiting to be handed out included. The caller
// must then skip c's EventRecv and EventEOF events after k in its batch:
// their bytes come again (and the EOF after them). It reports whether it
// did so; when it did not (another worker's connection, c closing), it
// was SetFraming.
func (c *Conn) SetFramingInBatch(f Framing, worker, k int) (bool, error) {
	f, err := c.setSendFraming(f)
	if err != nil {
		return false, err
	}
	w := c.w
	if worker != w.idx || k < 0 || w.handed+k >= w.pos || c.state != stateOpen {
		w.enqueue(request{kind: reqFraming, c: c, v: f})
		return false, nil
	}
	w.reframe(c, f, w.handed+k+1)
	return true, nil
}

// setSendFraming checks f and makes it what SendFrame uses.
func (c *Conn) setSendFraming(f Framing) (Framing, error) {
	f, err := cloneFraming(f)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.req != closeNone || c.freed {
		return nil, ErrClosed
	}
	c.framing = f
	return f, nil
}

// SendFrame sends payload as one frame of c's framing: after its header
// (LengthPrefixed) or before its terminator (Lines). The frame's bytes
// are queued together, never interleaved with another send's.
func (c *Conn) SendFrame(payload []byte) error {
	var hdr [8]byte
	if c.tlsc() != nil {
		before, after, err := c.frameParts(payload, &hdr)
		if err != nil {
			return err
		}
		return c.sendTLS(before, payload, after)
	}
	// One hold of c.mu for the framing and the queue: this is the hot path
	// of a frame echo.
	c.mu.Lock()
	if c.framing == nil {
		c.mu.Unlock()
		return errNoFraming
	}
	before, after, err := encodeFrame(c.framing, payload, &hdr)
	if err != nil {
		c.mu.Unlock()
		return err
	}
	return c.queueLocked(before, payload, after)
}

// errNoFraming is SendFrame's error on a connection without a framing.
var errNoFraming = &OptionError{"framing", nil, "send_frame needs a framing (set one with listen or connect, or set_framing)"}

// frameParts is what goes before and after payload to make it one frame
// of c's framing (a header in hdr, or a terminator); an error without a
// framing, or for a payload the framing cannot carry.
func (c *Conn) frameParts(payload []byte, hdr *[8]byte) (before, after []byte, err error) {
	c.mu.Lock()
	f := c.framing
	c.mu.Unlock()
	if f == nil {
		return nil, nil, errNoFraming
	}
	return encodeFrame(f, payload, hdr)
}

// encodeFrame is f.encode called on the concrete type: through the
// interface hdr would escape, and every frame sent would allocate.
func encodeFrame(f Framing, payload []byte, hdr *[8]byte) ([]byte, []byte, error) {
	switch f := f.(type) {
	case *Lines:
		return f.encode(payload, hdr)
	case *LengthPrefixed:
		return f.encode(payload, hdr)
	}
	return nil, nil, nil
}

// reframe applies a new framing on c's worker: what was received and not
// yet handed out as frames (from out[from:], when from >= 0, then the
// frame in progress, then the bytes held) is split again with f, from the
// next round.
func (w *worker) reframe(c *Conn, f Framing, from int) {
	if c.state != stateOpen && c.state != stateConnecting {
		return
	}
	var q byteQueue
	if from >= 0 {
		w.uncut(c, from, &q)
	}
	if c.fr != nil {
		c.fr.unsplit(&q)
	}
	q.appendQueue(&c.held)
	c.held = q
	c.frameErr = nil
	switch {
	case f == nil:
		c.fr = nil
	case c.fr == nil:
		c.fr = newFramer(f)
	default:
		c.fr.f = f
		c.fr.reset()
	}
	if c.held.len() > 0 {
		w.resume = append(w.resume, c)
	}
}

// uncut takes c's EventRecv events in out[from:] back: their bytes, as
// they were in the stream, go to q, and the events become empty ones
// (Kind 0) that nobody delivers. An EventEOF among them is taken back too,
// to come again after the bytes.
func (w *worker) uncut(c *Conn, from int, q *byteQueue) {
	var hdr [8]byte
	for i := from; i < len(w.out); i++ {
		ev := &w.out[i]
		if ev.Conn != c {
			continue
		}
		switch ev.Kind {
		case EventRecv:
			if c.fr != nil {
				before, after := c.fr.f.unsplit(ev.Data, &hdr)
				q.append(before)
				q.append(ev.Data)
				q.append(after)
			} else {
				q.append(ev.Data)
			}
			*ev = Event{}
		case EventEOF:
			c.eofTold = false
			*ev = Event{}
		}
	}
}

// feed splits d, received on framed connection c. After a bad frame,
// reading stops and c closes next round (deliverHeld), once the handlers
// have answered the frames before it; the bytes from it on are kept in
// case a new framing comes first.
func (w *worker) feed(c *Conn, d []byte) bool {
	w.sink.c = c
	// A frame must fit in recv_buffer_limit by itself; bytes held behind it
	// (read while paused) were within the limit when they came.
	rest, err := c.fr.feed(d, w.m.opts.recvLimit, &w.sink)
	w.sink.c = nil
	if err == nil {
		return true
	}
	c.frameErr = err
	var q byteQueue
	q.append(rest)
	q.appendQueue(&c.held)
	c.held = q
	return false
}

// endsInFrame reports whether the peer's FIN came in the middle of a
// frame: then the bytes of that frame are not dropped unseen, the
// connection closes (next round, the frames before answered) with a
// ProtocolError saying so.
func (w *worker) endsInFrame(c *Conn) bool {
	if c.fr == nil || c.fr.held() == 0 {
		return false
	}
	c.frameErr = &ProtocolError{fmt.Sprintf("the peer closed in the middle of a frame (%d bytes of it came)", c.fr.held())}
	return true
}

// frameSink of a worker: frames become EventRecv events of conn c.
type frameOut struct {
	w *worker
	c *Conn
}

func (o *frameOut) frame(b []byte) { o.w.emit(Event{Kind: EventRecv, Conn: o.c, Data: b}) }

// memory is the spill memory while it lasts, then memory of the frame's
// own, freed with the round (as deferred bytes are).
func (o *frameOut) memory(n int) []byte {
	if b := o.w.spill.takeAll(n); b != nil {
		return b
	}
	b, err := poller.AllocMemory(n)
	if err != nil {
		return nil
	}
	o.w.spent = append(o.w.spent, b)
	return b
}
