package loadgen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"time"
)

// worker drives one connection (in ModeChurn, one after another). Run sets
// idx and conn before the goroutine starts; the figures after them are
// written only by the goroutine and read by Run after it has returned.
type worker struct {
	_         [64]byte      // keeps neighbours' hot fields off this cache line
	completed atomic.Uint64 // verified echoes over the whole run; read by the progress reporter
	_         [56]byte

	idx  int
	conn net.Conn

	messages   uint64 // verified echoes inside the measured window
	dials      uint64 // ModeChurn: connects that succeeded
	mismatches uint64
	errors     uint64
	firstErr   error
	firstErrAt time.Time
	hist       histogram
}

// fail notes an I/O error, naming a timeout for what it is.
func (w *worker) fail(r *runner, err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("no echo within %v: %w", r.cfg.ReplyTimeout, err)
	}
	w.failed(r, err)
}

// failed counts an error unless the run is over: then the error is the
// connection being closed under us, or too late to matter.
func (w *worker) failed(r *runner, err error) {
	if r.stopped.Load() || !time.Now().Before(r.end) {
		return
	}
	w.errors++
	w.note(err)
}

func (w *worker) note(err error) {
	if w.firstErr == nil {
		w.firstErr = fmt.Errorf("conn %d: %w", w.idx, err)
		w.firstErrAt = time.Now()
	}
}

// run writes Depth messages, then for each echo reads, verifies and writes
// the next, so Depth messages stay in flight. It returns when the run ends,
// the connection fails, or Run closes the connection.
func (w *worker) run(r *runner) {
	defer w.conn.Close()
	size, depth := r.cfg.Size, r.cfg.Depth
	p := newPayload(w.idx, r.pattern).framed(r.cfg.Framing)
	sbuf := make([]byte, size)
	rbuf := make([]byte, size)
	sent := make([]time.Duration, depth) // write time of each in-flight message, since r.start
	var rd io.Reader = w.conn
	var br *bufio.Reader
	// A UDP socket's reads are whole datagrams, each read straight into
	// rbuf: a buffered reader would cut one short when little room is left.
	if _, udp := w.conn.(*net.UDPConn); !udp {
		if n := readBufSize(size, depth); n > 0 {
			br = bufio.NewReaderSize(w.conn, n)
			rd = br
		}
	}

	// Deadlines are moved forward at most every ReplyTimeout/2, not per
	// message: a read may wait between 1x and 1.5x ReplyTimeout.
	timeout := r.cfg.ReplyTimeout
	var refreshAt time.Time
	refresh := func(now time.Time) {
		if now.After(refreshAt) {
			w.conn.SetDeadline(now.Add(timeout + timeout/2))
			refreshAt = now.Add(timeout / 2)
		}
	}

	send := func(seq uint64) bool {
		p.build(sbuf, seq)
		now := time.Now()
		refresh(now)
		sent[seq%uint64(depth)] = now.Sub(r.start)
		if _, err := w.conn.Write(sbuf); err != nil {
			w.fail(r, err)
			return false
		}
		return true
	}

	var next uint64 // sequence number of the next message to write
	for ; next < uint64(depth); next++ {
		if !send(next) {
			return
		}
	}
	for seq := uint64(0); ; seq++ {
		if br != nil && br.Buffered() < size {
			// Its turn ends with the replies it has: the next read goes to
			// the socket. With several in flight, a fast server's replies
			// are always there, so a goroutine that did not yield here
			// would never park, and keep the client's only CPU until it
			// is preempted (10 ms) while the others wait: a p99 of 100 ms
			// and more at 16 in flight (p50 45 us), whatever the server.
			// Independent clients do not wait for each other.
			runtime.Gosched()
		}
		if _, err := io.ReadFull(rd, rbuf); err != nil {
			w.fail(r, err)
			return
		}
		now := time.Now()
		w.echoed(r, p, rbuf, seq, sent[seq%uint64(depth)], now)
		if !now.Before(r.end) || r.stopped.Load() {
			return
		}
		if !send(next) {
			return
		}
		next++
	}
}

// echoed checks buf, the echo of message seq sent at sentAt (since
// r.start), and counts it: a mismatch, or a verified echo, measured when
// it came inside the window.
func (w *worker) echoed(r *runner, p payload, buf []byte, seq uint64, sentAt time.Duration, now time.Time) {
	if err := p.check(buf, seq); err != nil {
		w.mismatches++
		w.note(err)
		return
	}
	w.completed.Add(1)
	if !now.Before(r.measureStart) && now.Before(r.end) {
		w.messages++
		w.hist.record(now.Sub(r.start) - sentAt)
	}
}
