package loadgen

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestBulkMovesAllBytes(t *testing.T) {
	// Size 1000 does not divide n, so the last write is short.
	const n = 4<<20 + 7
	s := startServer(t, echo(nil))
	res := runFor(t, Config{Mode: ModeBulk, Addr: s.addr(), Conns: 2, Size: 1000, Bytes: n, Duration: 2 * time.Second}, 2*time.Second)
	if res.Mode != ModeBulk || res.Errors != 0 || res.Mismatches != 0 || res.FirstError != "" || res.Connected != 2 {
		t.Fatalf("got %+v", res)
	}
	if res.Bytes != 2*n || res.Messages != 2*(n/1000+1) {
		t.Fatalf("Bytes %d Messages %d, want %d and %d", res.Bytes, res.Messages, 2*n, 2*(n/1000+1))
	}
	if res.Elapsed <= 0 || res.MBPerSec <= 0 || res.MBPerSec != float64(res.Bytes)/res.Elapsed.Seconds()/1e6 {
		t.Fatalf("rates: %+v", res)
	}
}

func TestBulkCorruptByteIsMismatch(t *testing.T) {
	const at = 1_000_500
	s := startServer(t, echo(func(off int, b []byte) {
		if at >= off && at < off+len(b) {
			b[at-off] ^= 0x80
		}
	}))
	res := runFor(t, Config{Mode: ModeBulk, Addr: s.addr(), Conns: 1, Size: 1000, Bytes: 2 << 20, Duration: 2 * time.Second}, 2*time.Second)
	if res.Mismatches != 1 || res.Errors != 0 || res.Bytes != 2<<20-1000 {
		t.Fatalf("got %+v", res)
	}
	if !strings.Contains(res.FirstError, "stream offset 1000000: message 1000 byte 500") {
		t.Fatalf("FirstError %q", res.FirstError)
	}
}

func TestBulkDroppedByteIsMismatch(t *testing.T) {
	// A server that echoes one byte twice shifts the rest of the stream:
	// the message holding it and the later ones all differ.
	s := startServer(t, func(c net.Conn) {
		b := make([]byte, 100)
		if _, err := io.ReadFull(c, b); err != nil {
			return
		}
		c.Write(b)
		c.Write(b[99:])
		echo(nil)(c)
	})
	res := runFor(t, Config{Mode: ModeBulk, Addr: s.addr(), Conns: 1, Size: 100, Bytes: 10_000, Duration: 2 * time.Second}, 2*time.Second)
	if res.Messages != 1 || res.Mismatches != 99 || res.Errors != 0 {
		t.Fatalf("got %+v", res)
	}
}

func TestBulkSilentServerIsError(t *testing.T) {
	s := startServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	cfg := Config{Mode: ModeBulk, Addr: s.addr(), Conns: 2, Size: 1 << 16, Bytes: 1 << 20, Duration: 3 * time.Second, ReplyTimeout: 100 * time.Millisecond}
	res := runFor(t, cfg, time.Second)
	if res.Errors != 2 || res.Bytes != 0 || !strings.Contains(res.FirstError, "no echo within 100ms") {
		t.Fatalf("got %+v", res)
	}
}

func TestBulkDurationIsTimeLimit(t *testing.T) {
	// Echoes, but too slowly to finish in time; no single wait reaches
	// ReplyTimeout.
	s := startServer(t, func(c net.Conn) {
		buf := make([]byte, 1000)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			c.Write(buf[:n])
			time.Sleep(time.Millisecond)
		}
	})
	cfg := Config{Mode: ModeBulk, Addr: s.addr(), Conns: 1, Size: 1000, Bytes: 10 << 20, Duration: 200 * time.Millisecond}
	res := runFor(t, cfg, time.Second)
	if res.Errors != 1 || res.Bytes == 0 || !strings.Contains(res.FirstError, "not echoed within Duration (200ms)") {
		t.Fatalf("got %+v", res)
	}
	if res.Elapsed < 200*time.Millisecond || res.Elapsed > 400*time.Millisecond {
		t.Fatalf("Elapsed %v", res.Elapsed)
	}
}
