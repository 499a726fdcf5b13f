package loadgen

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// runner is the state shared by the goroutines of one Run.
type runner struct {
	cfg          Config
	pattern      []byte
	start        time.Time // first traffic
	measureStart time.Time // start + Warmup
	end          time.Time // measureStart + Duration
	stopped      atomic.Bool
	workers      []*worker
}

// Run connects cfg.Conns connections to cfg.Addr, echoes messages for
// cfg.Warmup+cfg.Duration (or until ctx is done, or every connection has
// failed) and returns the figures of the measured window. Every connection is
// closed and every goroutine it started has returned before it returns.
// That is ModeEcho; cfg.Mode selects another kind of load (see ModeChurn,
// ModeBulk, ModeIdle), with the same rules for errors.
//
// The error is non-nil only for a bad config (a *ConfigError) or when no
// connection could be made (wraps ErrNoConnection and the first dial error;
// the Result then still carries Errors and FirstError). Failures of single
// connections, mismatches and ctx cancellation are reported in the Result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	switch cfg.mode() {
	case ModeChurn:
		return runChurn(ctx, cfg)
	case ModeBulk:
		return runBulk(ctx, cfg)
	case ModeIdle:
		return runIdle(ctx, cfg)
	}
	if cfg.Client == ClientEngine {
		return runEngineEcho(ctx, cfg)
	}
	res := Result{Mode: ModeEcho, Addr: cfg.Addr, Conns: cfg.Conns, Size: cfg.Size, Depth: cfg.Depth}

	conns, dialErrs, firstDial := dialAll(ctx, cfg)
	res.Errors = dialErrs
	if firstDial != nil {
		res.FirstError = firstDial.Error()
	}
	r := &runner{cfg: cfg, pattern: newPattern(cfg.Size)}
	for i, c := range conns {
		if c != nil {
			r.workers = append(r.workers, &worker{idx: i, conn: c})
		}
	}
	if len(r.workers) == 0 {
		return res, fmt.Errorf("%w to %s: %w", ErrNoConnection, cfg.Addr, firstDial)
	}
	res.Connected = len(r.workers)
	stopAt := r.drive(ctx, (*worker).run, func() {
		for _, w := range r.workers {
			w.conn.Close()
		}
	})
	r.collect(&res, stopAt, firstDial)
	return res, nil
}

// drive runs work in a goroutine per worker for Warmup+Duration, until ctx
// is done or until every worker has returned, whichever comes first. Then it
// sets stopped and calls halt, which must make every worker return soon,
// and waits for them. It returns when the run stopped.
func (r *runner) drive(ctx context.Context, work func(*worker, *runner), halt func()) time.Time {
	r.start = time.Now()
	r.measureStart = r.start.Add(r.cfg.Warmup)
	r.end = r.measureStart.Add(r.cfg.Duration)

	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Go(func() { work(w, r) })
	}
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()

	var progress sync.WaitGroup
	progressDone := make(chan struct{})
	if r.cfg.Progress != nil {
		progress.Go(func() { r.report(r.cfg.Progress, progressDone) })
	}

	timer := time.NewTimer(time.Until(r.end))
	select {
	case <-timer.C:
	case <-ctx.Done():
	case <-allDone:
	}
	timer.Stop()
	stopAt := time.Now()
	// stopped is set before halt, so a worker that sees its connection
	// closed under it knows this is the end, not an error.
	r.stopped.Store(true)
	halt()
	<-allDone
	close(progressDone)
	progress.Wait()
	return stopAt
}

// dialAll connects every connection at once. conns[i] is nil where the dial
// failed; the first failure in time is returned for FirstError.
func dialAll(ctx context.Context, cfg Config) (conns []net.Conn, failed uint64, first error) {
	conns = make([]net.Conn, cfg.Conns)
	d := net.Dialer{Timeout: cfg.ConnectTimeout}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for i := range conns {
		wg.Go(func() {
			c, err := dial(ctx, &d, cfg)
			if err == nil {
				conns[i] = c
				return
			}
			mu.Lock()
			failed++
			if first == nil {
				first = fmt.Errorf("conn %d: %w", i, err)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return conns, failed, first
}

// collect merges the workers' figures into res.
func (r *runner) collect(res *Result, stopAt time.Time, firstDial error) {
	var h histogram
	var firstAt time.Time
	for _, w := range r.workers {
		res.Messages += w.messages
		res.Mismatches += w.mismatches
		res.Errors += w.errors
		h.merge(&w.hist)
		if w.firstErr != nil && firstDial == nil && (firstAt.IsZero() || w.firstErrAt.Before(firstAt)) {
			firstAt = w.firstErrAt
			res.FirstError = w.firstErr.Error()
		}
	}
	if stopAt.After(r.end) {
		stopAt = r.end
	}
	res.Elapsed = max(stopAt.Sub(r.measureStart), 0)
	res.Bytes = res.Messages * uint64(r.cfg.Size)
	res.setRates()
	res.setLatencies(&h)
}
