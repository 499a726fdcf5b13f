package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// stream is one connection of ModeBulk. Its writer sends cfg.Bytes in
// writes of cfg.Size bytes while its reader reads the echo back at the same
// time: a single goroutine that wrote everything before reading would stop
// for good once the server, blocked on its own writes to us, stopped
// reading, with both directions' socket buffers full.
//
// The stream is the messages 0, 1, 2, ... of the connection's payload, each
// Size bytes (the last one cut short), so a corrupted, reordered, lost or
// duplicated byte makes the message holding it a mismatch.
type stream struct {
	idx  int
	conn net.Conn

	mu       sync.Mutex
	stopped  bool      // Run has closed conn: later I/O errors are not the connection's
	finished bool      // every byte came back
	err      error     // first failure: writer's, reader's, or the time limit
	errAt    time.Time // when err was noted
	done     time.Time // when the last byte was read, if finished

	// The reader's figures, read by Run after the reader has returned.
	messages, bytes, mismatches uint64
	mismatch                    error // first mismatch
	mismatchAt                  time.Time
}

// runBulk runs ModeBulk; cfg.Duration bounds the whole transfer.
func runBulk(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Mode: ModeBulk, Addr: cfg.Addr, Conns: cfg.Conns, Size: cfg.Size, Depth: 1}
	conns, dialErrs, firstDial := dialAll(ctx, cfg)
	res.Errors = dialErrs
	if firstDial != nil {
		res.FirstError = firstDial.Error()
	}
	var streams []*stream
	for i, c := range conns {
		if c != nil {
			streams = append(streams, &stream{idx: i, conn: c})
		}
	}
	if len(streams) == 0 {
		return res, fmt.Errorf("%w to %s: %w", ErrNoConnection, cfg.Addr, firstDial)
	}
	res.Connected = len(streams)

	pattern := newPattern(cfg.Size)
	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Go(func() { s.run(cfg, newPayload(s.idx, pattern)) })
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	timer := time.NewTimer(cfg.Duration)
	var limit error
	select {
	case <-timer.C:
		limit = fmt.Errorf("%d bytes not echoed within Duration (%v)", cfg.Bytes, cfg.Duration)
	case <-ctx.Done():
	case <-allDone:
	}
	timer.Stop()
	stopAt := time.Now()
	for _, s := range streams {
		s.halt(limit)
	}
	<-allDone

	end := start
	var firstAt time.Time
	for _, s := range streams {
		res.Messages += s.messages
		res.Bytes += s.bytes
		res.Mismatches += s.mismatches
		if s.err != nil {
			res.Errors++
		}
		if s.finished {
			end = later(end, s.done)
		} else {
			end = later(end, stopAt)
		}
		for _, e := range []struct {
			err error
			at  time.Time
		}{{s.err, s.errAt}, {s.mismatch, s.mismatchAt}} {
			if e.err != nil && firstDial == nil && (firstAt.IsZero() || e.at.Before(firstAt)) {
				firstAt = e.at
				res.FirstError = e.err.Error()
			}
		}
	}
	res.Elapsed = end.Sub(start)
	res.setRates()
	return res, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// run streams and verifies, then closes the connection.
func (s *stream) run(cfg Config, p payload) {
	var wg sync.WaitGroup
	wg.Go(func() { s.write(cfg, p) })
	s.read(cfg, p)
	wg.Wait()
	s.conn.Close()
}

// chunk is the length of the message at stream offset off.
func chunk(cfg Config, off int64) int { return int(min(int64(cfg.Size), cfg.Bytes-off)) }

// deadline moves a read or write deadline forward lazily, as the echo
// worker does: at most every timeout/2, to between 1x and 1.5x timeout
// ahead.
type deadline struct {
	set       func(time.Time) error
	timeout   time.Duration
	refreshAt time.Time
}

func (d *deadline) refresh() {
	if now := time.Now(); now.After(d.refreshAt) {
		d.set(now.Add(d.timeout + d.timeout/2))
		d.refreshAt = now.Add(d.timeout / 2)
	}
}

func (s *stream) write(cfg Config, p payload) {
	buf := make([]byte, cfg.Size)
	dl := deadline{set: s.conn.SetWriteDeadline, timeout: cfg.ReplyTimeout}
	for seq, off := uint64(0), int64(0); off < cfg.Bytes; seq++ {
		n := chunk(cfg, off)
		p.build(buf[:n], seq)
		dl.refresh()
		if _, err := s.conn.Write(buf[:n]); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("server read nothing for %v: %w", cfg.ReplyTimeout, err)
			}
			s.fail(fmt.Errorf("write at offset %d: %w", off, err))
			return
		}
		off += int64(n)
	}
}

func (s *stream) read(cfg Config, p payload) {
	buf := make([]byte, cfg.Size)
	dl := deadline{set: s.conn.SetReadDeadline, timeout: cfg.ReplyTimeout}
	for seq, off := uint64(0), int64(0); off < cfg.Bytes; seq++ {
		n := chunk(cfg, off)
		dl.refresh()
		if _, err := io.ReadFull(s.conn, buf[:n]); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("no echo within %v: %w", cfg.ReplyTimeout, err)
			}
			s.fail(fmt.Errorf("read at offset %d: %w", off, err))
			return
		}
		if err := p.check(buf[:n], seq); err != nil {
			s.mismatches++
			if s.mismatch == nil {
				s.mismatch = fmt.Errorf("conn %d: stream offset %d: %w", s.idx, off, err)
				s.mismatchAt = time.Now()
			}
		} else {
			s.messages++
			s.bytes += uint64(n)
		}
		off += int64(n)
	}
	s.mu.Lock()
	s.finished = true
	s.done = time.Now()
	s.mu.Unlock()
}

// fail notes the stream's first error, unless Run stopped it, and closes
// the connection so that the other half returns too.
func (s *stream) fail(err error) {
	s.mu.Lock()
	if !s.stopped && s.err == nil {
		s.err = fmt.Errorf("conn %d: %w", s.idx, err)
		s.errAt = time.Now()
	}
	s.mu.Unlock()
	s.conn.Close()
}

// halt stops the stream; limit, if not nil, is its error unless it has
// finished or failed already.
func (s *stream) halt(limit error) {
	s.mu.Lock()
	if limit != nil && !s.finished && s.err == nil {
		s.err = fmt.Errorf("conn %d: %w", s.idx, limit)
		s.errAt = time.Now()
	}
	s.stopped = true
	s.mu.Unlock()
	s.conn.Close()
}
