package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestChurnOneMessagePerConnection(t *testing.T) {
	// The server echoes one message, then waits for the close: a second
	// message on the same connection would never come back.
	s := startServer(t, func(c net.Conn) {
		io.CopyN(c, c, 100)
		io.Copy(io.Discard, c)
	})
	cfg := Config{Mode: ModeChurn, Addr: s.addr(), Conns: 4, Size: 100, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond}
	res := runFor(t, cfg, 2*time.Second)
	if res.Mode != ModeChurn || res.Messages == 0 || res.Errors != 0 || res.Mismatches != 0 || res.FirstError != "" {
		t.Fatalf("got %+v", res)
	}
	// Warmup cycles connected too but are not counted.
	if uint64(res.Connected) <= res.Messages || res.Bytes != res.Messages*100 || res.Depth != 1 {
		t.Fatalf("got %+v", res)
	}
	if res.ConnsPerSec <= 0 || res.ConnsPerSec != res.MsgsPerSec || res.Elapsed != 300*time.Millisecond {
		t.Fatalf("rates: %+v", res)
	}
	if res.P50 <= 0 || res.P50 > res.P90 || res.P90 > res.P99 || res.P99 > res.Max {
		t.Fatalf("latencies out of order: %+v", res)
	}
}

func TestChurnCorruptByteIsMismatch(t *testing.T) {
	s := startServer(t, echo(func(off int, b []byte) {
		if 10 >= off && 10 < off+len(b) {
			b[10-off] ^= 1
		}
	}))
	res := runFor(t, Config{Mode: ModeChurn, Addr: s.addr(), Conns: 2, Size: 64, Duration: 100 * time.Millisecond}, 2*time.Second)
	if res.Mismatches == 0 || res.Messages != 0 || res.Errors != 0 || !strings.Contains(res.FirstError, "byte 10") {
		t.Fatalf("got %+v", res)
	}
}

func TestChurnServerClosingIsError(t *testing.T) {
	// Every connection is closed unanswered: each worker stops at its
	// first error, and Run ends without waiting for Duration.
	s := startServer(t, func(c net.Conn) {})
	res := runFor(t, Config{Mode: ModeChurn, Addr: s.addr(), Conns: 3, Size: 64, Duration: time.Minute}, 2*time.Second)
	if res.Errors != 3 || res.Messages != 0 || res.Connected < 3 || res.FirstError == "" {
		t.Fatalf("got %+v", res)
	}
}

func TestChurnNoServerIsError(t *testing.T) {
	res, err := Run(context.Background(), Config{Mode: ModeChurn, Addr: closedAddr(t), Conns: 2, Size: 8, Duration: time.Second})
	var op *net.OpError
	if !errors.Is(err, ErrNoConnection) || !errors.As(err, &op) {
		t.Fatalf("err = %v, want ErrNoConnection and the dial error", err)
	}
	if res.Errors != 2 || res.Connected != 0 || !strings.Contains(res.FirstError, "connect: ") {
		t.Fatalf("got %+v", res)
	}
}
