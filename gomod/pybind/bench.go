package main

/*
#include "glue.h"
*/
import "C"

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
	"github.com/pyiocp/pyiocp/gomod/loadgen"
)

// A load-generator run goes on in Go goroutines while Python polls its
// progress (for a live line) and then waits for the result, with the GIL
// released, in slices short enough to notice Ctrl-C.
type benchRun struct {
	cancel   context.CancelFunc
	done     chan struct{}
	res      loadgen.Result
	err      error
	elapsed  atomic.Int64 // ns
	messages atomic.Uint64
	rate     atomic.Uint64 // float64 bits
}

var benches struct {
	mu   sync.Mutex
	runs map[int64]*benchRun
	next int64
}

//export pyiocpBenchStart
func pyiocpBenchStart(addr *C.char, conns, size, depth C.int64_t, durationNs, warmupNs C.int64_t,
	h *C.int64_t, e *C.pyiocp_error) C.int {
	b := &benchRun{done: make(chan struct{})}
	cfg := loadgen.Config{
		Addr:     C.GoString(addr),
		Conns:    int(conns),
		Size:     int(size),
		Depth:    int(depth),
		Duration: duration(durationNs),
		Warmup:   duration(warmupNs),
		Progress: func(p loadgen.Progress) {
			b.elapsed.Store(int64(p.Elapsed))
			b.messages.Store(p.Messages)
			b.rate.Store(math.Float64bits(p.MsgsPerSec))
		},
	}
	if err := cfg.Validate(); err != nil {
		var ce *loadgen.ConfigError
		if errors.As(err, &ce) {
			err = &engine.OptionError{Name: ce.Field, Value: ce.Value, Reason: ce.Reason}
		}
		return setErr(e, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() {
		defer close(b.done)
		b.res, b.err = loadgen.Run(ctx, cfg)
	}()
	benches.mu.Lock()
	if benches.runs == nil {
		benches.runs = make(map[int64]*benchRun)
	}
	benches.next++
	benches.runs[benches.next] = b
	*h = C.int64_t(benches.next)
	benches.mu.Unlock()
	return C.PYIOCP_OK
}

func benchByHandle(h C.int64_t) *benchRun {
	benches.mu.Lock()
	defer benches.mu.Unlock()
	return benches.runs[int64(h)]
}

//export pyiocpBenchProgress
func pyiocpBenchProgress(h C.int64_t, elapsed *C.double, messages *C.int64_t, rate *C.double) {
	if b := benchByHandle(h); b != nil {
		*elapsed = C.double(time.Duration(b.elapsed.Load()).Seconds())
		*messages = C.int64_t(b.messages.Load())
		*rate = C.double(math.Float64frombits(b.rate.Load()))
	}
}

//export pyiocpBenchCancel
func pyiocpBenchCancel(h C.int64_t) {
	if b := benchByHandle(h); b != nil {
		b.cancel()
	}
}

// pyiocpBenchWait waits up to timeoutNs for the run; 1 when it is over (the
// result or error written, the handle forgotten), 0 while it goes on.
//
//export pyiocpBenchWait
func pyiocpBenchWait(h C.int64_t, timeoutNs C.int64_t, out *C.pyiocp_bench_result, e *C.pyiocp_error) C.int {
	b := benchByHandle(h)
	if b == nil {
		setErr(e, errors.New("no such load-generator run"))
		return 1
	}
	t := time.NewTimer(duration(timeoutNs))
	defer t.Stop()
	select {
	case <-b.done:
	case <-t.C:
		return 0
	}
	benches.mu.Lock()
	delete(benches.runs, int64(h))
	benches.mu.Unlock()
	b.cancel()
	r := b.res
	out.conns = C.int64_t(r.Conns)
	out.size = C.int64_t(r.Size)
	out.depth = C.int64_t(r.Depth)
	out.connected = C.int64_t(r.Connected)
	out.messages = C.int64_t(r.Messages)
	out.bytes = C.int64_t(r.Bytes)
	out.errors = C.int64_t(r.Errors)
	out.mismatches = C.int64_t(r.Mismatches)
	out.elapsed = C.double(r.Elapsed.Seconds())
	out.msgs_per_sec = C.double(r.MsgsPerSec)
	out.mb_per_sec = C.double(r.MBPerSec)
	out.p50 = C.double(r.P50.Seconds())
	out.p90 = C.double(r.P90.Seconds())
	out.p99 = C.double(r.P99.Seconds())
	out.max = C.double(r.Max.Seconds())
	out.mean = C.double(r.Mean.Seconds())
	putString(out.first_error[:], r.FirstError)
	putString(out.table[:], r.Table())
	setErr(e, b.err)
	return 1
}
