package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// runIdle runs ModeIdle. Connections are opened, and later checked,
// idleParallel at a time; a connection that fails is not retried, so every
// failure shows in Errors. Between the two echoes the connections hold no
// buffer of ours, and no goroutine waits on them.
func runIdle(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Mode: ModeIdle, Addr: cfg.Addr, Conns: cfg.Conns, Size: cfg.Size, Depth: 1}
	pattern := newPattern(cfg.Size)
	conns := make([]net.Conn, cfg.Conns)
	slots := make([]idleSlot, min(cfg.Conns, idleParallel))
	for i := range slots {
		slots[i] = idleSlot{sbuf: make([]byte, cfg.Size), rbuf: make([]byte, cfg.Size)}
	}
	closeAll := func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}

	d := net.Dialer{Timeout: cfg.ConnectTimeout}
	dialCtx, cancel := cancelOnly(ctx)
	defer cancel()
	eachParallel(cfg.Conns, func(slot, i int) {
		s := &slots[slot]
		c, err := dial(dialCtx, &d, cfg)
		if err != nil {
			if dialCtx.Err() == nil {
				s.fail(i, fmt.Errorf("connect: %w", err))
			}
			return
		}
		if s.echo(ctx, cfg, c, newPayload(i, pattern), i, 0) {
			c.SetDeadline(time.Time{})
			conns[i] = c
		} else {
			c.Close()
		}
	})
	for _, c := range conns {
		if c != nil {
			res.Connected++
		}
	}
	if ctx.Err() != nil {
		closeAll()
		collectIdle(&res, slots)
		return res, nil
	}
	if res.Connected == 0 {
		first := collectIdle(&res, slots)
		return res, fmt.Errorf("%w to %s: %w", ErrNoConnection, cfg.Addr, first)
	}

	if cfg.Ready != nil {
		cfg.Ready(res.Connected)
	}
	idleFrom := time.Now()
	timer := time.NewTimer(cfg.Duration)
	select {
	case <-timer.C:
	case <-ctx.Done():
	}
	timer.Stop()
	res.Elapsed = time.Since(idleFrom)

	if ctx.Err() == nil {
		eachParallel(cfg.Conns, func(slot, i int) {
			if c := conns[i]; c != nil {
				slots[slot].echo(ctx, cfg, c, newPayload(i, pattern), i, 1)
				c.Close()
			}
		})
	}
	closeAll()
	collectIdle(&res, slots)
	return res, nil
}

// eachParallel calls fn(slot, i) for every i in 0..n-1 from at most
// idleParallel goroutines; slot numbers the goroutine, so fn may keep state
// per slot without locking. It returns when every call has.
func eachParallel(n int, fn func(slot, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for slot := range min(n, idleParallel) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(slot, i)
			}
		})
	}
	wg.Wait()
}

// idleSlot is the buffers and figures of one of idle's goroutines.
type idleSlot struct {
	sbuf, rbuf           []byte
	messages, mismatches uint64
	errors               uint64
	firstErr             error
	firstErrAt           time.Time
	hist                 histogram
}

// echo writes message seq on connection i and verifies its echo within
// ReplyTimeout; true when it came back intact. An error after ctx is done
// is not counted: the deadline was cut short to end the run.
func (s *idleSlot) echo(ctx context.Context, cfg Config, c net.Conn, p payload, i int, seq uint64) bool {
	unwatch := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer unwatch()
	began := time.Now()
	c.SetDeadline(began.Add(cfg.ReplyTimeout))
	p.build(s.sbuf, seq)
	_, err := c.Write(s.sbuf)
	if err == nil {
		_, err = io.ReadFull(c, s.rbuf)
	}
	if err != nil {
		if ctx.Err() == nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = fmt.Errorf("no echo within %v: %w", cfg.ReplyTimeout, err)
			}
			s.fail(i, err)
		}
		return false
	}
	rtt := time.Since(began)
	if err := p.check(s.rbuf, seq); err != nil {
		s.mismatches++
		s.note(i, err)
		return false
	}
	s.messages++
	s.hist.record(rtt)
	return true
}

func (s *idleSlot) fail(i int, err error) {
	s.errors++
	s.note(i, err)
}

func (s *idleSlot) note(i int, err error) {
	if s.firstErr == nil {
		s.firstErr = fmt.Errorf("conn %d: %w", i, err)
		s.firstErrAt = time.Now()
	}
}

// collectIdle merges the slots' figures into res and returns the first
// error or mismatch.
func collectIdle(res *Result, slots []idleSlot) error {
	var h histogram
	var first error
	var firstAt time.Time
	for i := range slots {
		s := &slots[i]
		res.Messages += s.messages
		res.Mismatches += s.mismatches
		res.Errors += s.errors
		h.merge(&s.hist)
		if s.firstErr != nil && (first == nil || s.firstErrAt.Before(firstAt)) {
			first, firstAt = s.firstErr, s.firstErrAt
		}
	}
	if first != nil {
		res.FirstError = first.Error()
	}
	res.Bytes = res.Messages * uint64(res.Size)
	res.setLatencies(&h)
	return first
}
