package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// runChurn runs ModeChurn: Conns workers each connect, echo one message and
// close, over and over, until the run ends. Like an echo connection, a
// worker stops at its first error (a failed connect included), so Errors
// is at most Conns.
//
// The client closes first, so the client side holds the TIME_WAIT state.
// On loopback Linux lets connect reuse a port in TIME_WAIT once it is
// net.ipv4.tcp_tw_reuse_delay (1 s) old when net.ipv4.tcp_tw_reuse is 1 or 2
// (2, loopback only, is the default), so the ~28000 ports of the default
// ephemeral range last up to about 28000 connections a second; past that a
// connect fails with EADDRNOTAVAIL, an error like any other. Connections
// end with a FIN, never a reset, so the server sees an orderly close.
func runChurn(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Mode: ModeChurn, Addr: cfg.Addr, Conns: cfg.Conns, Size: cfg.Size, Depth: 1}
	r := &runner{cfg: cfg, pattern: newPattern(cfg.Size)}
	for i := range cfg.Conns {
		r.workers = append(r.workers, &worker{idx: i})
	}
	stop, cancel := cancelOnly(ctx)
	defer cancel()
	stopAt := r.drive(ctx, func(w *worker, r *runner) { w.churn(r, stop) }, cancel)
	r.collect(&res, stopAt, nil)
	res.ConnsPerSec = res.MsgsPerSec
	var first *worker
	for _, w := range r.workers {
		res.Connected += int(w.dials)
		if w.firstErr != nil && (first == nil || w.firstErrAt.Before(first.firstErrAt)) {
			first = w
		}
	}
	if res.Connected == 0 && first != nil {
		return res, fmt.Errorf("%w to %s: %w", ErrNoConnection, cfg.Addr, first.firstErr)
	}
	return res, nil
}

// churn connects, echoes one message and closes until the run ends or a
// cycle fails. stop is cancelled when the run ends: it aborts a connect
// and closes the connection of the cycle under way.
func (w *worker) churn(r *runner, stop context.Context) {
	p := newPayload(w.idx, r.pattern)
	sbuf := make([]byte, r.cfg.Size)
	rbuf := make([]byte, r.cfg.Size)
	d := net.Dialer{Timeout: r.cfg.ConnectTimeout}
	for seq := uint64(0); !r.stopped.Load() && time.Now().Before(r.end); seq++ {
		began := time.Now()
		c, err := dial(stop, &d, r.cfg)
		if err != nil {
			if stop.Err() == nil {
				w.failed(r, fmt.Errorf("connect: %w", err))
			}
			return
		}
		w.dials++
		if !w.cycle(r, stop, c, p, seq, sbuf, rbuf, began) {
			return
		}
	}
}

// cycleFailed counts err unless stop is done: then the connection was
// closed under the cycle because the run ended (ctx may end it before Run
// has set r.stopped).
func (w *worker) cycleFailed(r *runner, stop context.Context, err error) {
	if stop.Err() == nil {
		w.fail(r, err)
	}
}

// cycle echoes message seq on the new connection c and closes it; false
// when it failed.
func (w *worker) cycle(r *runner, stop context.Context, c net.Conn, p payload, seq uint64, sbuf, rbuf []byte, began time.Time) bool {
	defer c.Close()
	unwatch := context.AfterFunc(stop, func() { c.Close() })
	defer unwatch()
	c.SetDeadline(time.Now().Add(r.cfg.ReplyTimeout))
	p.build(sbuf, seq)
	if _, err := c.Write(sbuf); err != nil {
		w.cycleFailed(r, stop, err)
		return false
	}
	if _, err := io.ReadFull(c, rbuf); err != nil {
		w.cycleFailed(r, stop, err)
		return false
	}
	w.echoed(r, p, rbuf, seq, began.Sub(r.start), time.Now()) // a cycle's latency runs from its connect
	return true
}
