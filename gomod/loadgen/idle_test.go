package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestIdleReadyAfterEveryConnEchoed(t *testing.T) {
	// More connections than idleParallel, so they are opened in turns.
	const conns = 2*idleParallel + 10
	var got atomic.Int64 // bytes the server has read
	s := startServer(t, echo(func(_ int, b []byte) { got.Add(int64(len(b))) }))
	var ready []int
	var atReady int64
	cfg := Config{Mode: ModeIdle, Addr: s.addr(), Conns: conns, Size: 64, Duration: 100 * time.Millisecond,
		Ready: func(n int) { ready = append(ready, n); atReady = got.Load() }}
	res := runFor(t, cfg, 2*time.Second)
	if len(ready) != 1 || ready[0] != conns || atReady != conns*64 {
		t.Fatalf("Ready calls %v with %d bytes echoed, want [%d] with %d", ready, atReady, conns, conns*64)
	}
	if res.Mode != ModeIdle || res.Connected != conns || res.Messages != 2*conns || res.Errors != 0 || res.Mismatches != 0 {
		t.Fatalf("got %+v", res)
	}
	if res.Elapsed < 100*time.Millisecond || res.P50 <= 0 || res.P50 > res.Max {
		t.Fatalf("got %+v", res)
	}
}

func TestIdleServerClosingIdleConnsIsError(t *testing.T) {
	s := startServer(t, func(c net.Conn) { io.CopyN(c, c, 64) })
	var ready int
	cfg := Config{Mode: ModeIdle, Addr: s.addr(), Conns: 10, Size: 64, Duration: 100 * time.Millisecond, Ready: func(n int) { ready = n }}
	res := runFor(t, cfg, 2*time.Second)
	if ready != 10 || res.Connected != 10 || res.Errors != 10 || res.Messages != 10 || res.FirstError == "" {
		t.Fatalf("ready %d, got %+v", ready, res)
	}
}

func TestIdleMismatchIsNotConnected(t *testing.T) {
	s := startServer(t, echo(func(off int, b []byte) {
		if off == 0 {
			b[0] ^= 1
		}
	}))
	cfg := Config{Mode: ModeIdle, Addr: s.addr(), Conns: 3, Size: 64, Duration: 10 * time.Millisecond}
	res, err := Run(context.Background(), cfg)
	if !errors.Is(err, ErrNoConnection) || res.Mismatches != 3 || res.Connected != 0 {
		t.Fatalf("err %v, got %+v", err, res)
	}
}

func TestIdleNoServerIsError(t *testing.T) {
	called := false
	res, err := Run(context.Background(), Config{Mode: ModeIdle, Addr: closedAddr(t), Conns: 3, Size: 8, Duration: time.Second, Ready: func(int) { called = true }})
	var op *net.OpError
	if !errors.Is(err, ErrNoConnection) || !errors.As(err, &op) {
		t.Fatalf("err = %v, want ErrNoConnection and the dial error", err)
	}
	if called || res.Errors != 3 || res.Connected != 0 {
		t.Fatalf("Ready called %v, got %+v", called, res)
	}
}

func TestIdleCancelStopsRun(t *testing.T) {
	s := startServer(t, echo(nil))
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	began := time.Now()
	res, err := Run(ctx, Config{Mode: ModeIdle, Addr: s.addr(), Conns: 5, Size: 32, Duration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > time.Second+loadSlack {
		t.Fatalf("took %v", took)
	}
	if res.Errors != 0 || res.Connected != 5 || res.Messages != 5 {
		t.Fatalf("got %+v", res)
	}
}
