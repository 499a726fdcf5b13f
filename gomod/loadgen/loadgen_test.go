package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// server is a test TCP server on 127.0.0.1:0 that runs handle for each
// connection; stop closes everything and waits for every goroutine.
type server struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startServer(t *testing.T, handle func(c net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveListener(t, ln, 0, handle)
}

// serveListener serves ln as startServer does, accepting the first
// connection only after acceptAfter.
func serveListener(t *testing.T, ln net.Listener, acceptAfter time.Duration, handle func(c net.Conn)) *server {
	t.Helper()
	s := &server{ln: ln}
	s.wg.Go(func() {
		time.Sleep(acceptAfter)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				handle(c)
			})
		}
	})
	t.Cleanup(s.stop)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) stop() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// closedAddr is a loopback address nobody listens on (any more).
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// echo copies everything back, letting mutate alter the bytes first; off is
// the stream offset of b[0].
func echo(mutate func(off int, b []byte)) func(net.Conn) {
	return func(c net.Conn) {
		buf := make([]byte, 32<<10)
		off := 0
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if mutate != nil {
					mutate(off, buf[:n])
				}
				off += n
				if _, werr := c.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
}

// forClients runs f with each client of ModeEcho, as a subtest.
func forClients(t *testing.T, f func(t *testing.T, client string)) {
	for _, client := range []string{ClientNet, ClientEngine} {
		t.Run(client, func(t *testing.T) { f(t, client) })
	}
}

// loadSlack is what a loaded machine (the race detector, other work beside
// the tests) may add to a run that should end within a limit: the limits
// check that a run ends by itself, far sooner than if it did not.
const loadSlack = 3 * time.Second

func runFor(t *testing.T, cfg Config, limit time.Duration) Result {
	t.Helper()
	began := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(began); took > limit+loadSlack {
		t.Fatalf("Run took %v, want < %v", took, limit+loadSlack)
	}
	return res
}

func TestCorrectEchoServer(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		for _, depth := range []int{1, 8} {
			t.Run("depth"+strconv.Itoa(depth), func(t *testing.T) {
				s := startServer(t, echo(nil))
				cfg := Config{Client: client, Addr: s.addr(), Conns: 4, Size: 100, Depth: depth, Duration: 300 * time.Millisecond, Warmup: 50 * time.Millisecond}
				res := runFor(t, cfg, 2*time.Second)
				if res.Messages == 0 || res.Errors != 0 || res.Mismatches != 0 || res.FirstError != "" {
					t.Fatalf("got %+v", res)
				}
				if res.Connected != 4 || res.Depth != depth || res.Bytes != res.Messages*100 {
					t.Fatalf("got %+v", res)
				}
				if res.Elapsed < 250*time.Millisecond || res.Elapsed > 300*time.Millisecond {
					t.Fatalf("Elapsed %v, want the 300ms window", res.Elapsed)
				}
				if res.P50 <= 0 || res.P50 > res.P90 || res.P90 > res.P99 || res.P99 > res.Max {
					t.Fatalf("latencies out of order: %+v", res)
				}
				if res.MsgsPerSec <= 0 || res.MBPerSec <= 0 {
					t.Fatalf("rates: %+v", res)
				}
			})
		}
	})
}

func TestLargeMessagesAndSmallMessages(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		for _, size := range []int{1, 7, 8, 9, 100_000} {
			t.Run(strconv.Itoa(size), func(t *testing.T) {
				s := startServer(t, echo(nil))
				res := runFor(t, Config{Client: client, Addr: s.addr(), Conns: 2, Size: size, Depth: 2, Duration: 150 * time.Millisecond}, 2*time.Second)
				if res.Messages == 0 || res.Errors != 0 || res.Mismatches != 0 {
					t.Fatalf("got %+v", res)
				}
			})
		}
	})
}

func TestCorruptByteIsMismatch(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		const at = 1000 // stream offset flipped on every connection
		s := startServer(t, echo(func(off int, b []byte) {
			if at >= off && at < off+len(b) {
				b[at-off] ^= 0x40
			}
		}))
		res := runFor(t, Config{Client: client, Addr: s.addr(), Conns: 3, Size: 64, Duration: 200 * time.Millisecond}, 2*time.Second)
		if res.Mismatches != 3 || res.Errors != 0 {
			t.Fatalf("want one mismatch per connection, got %+v", res)
		}
		// Offset 1000 is byte 40 of message 15.
		if !strings.Contains(res.FirstError, "message 15 byte 40") {
			t.Fatalf("FirstError %q", res.FirstError)
		}
		if res.Messages == 0 {
			t.Fatalf("the other echoes still count: %+v", res)
		}
	})
}

func TestReorderedEchoIsMismatch(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		// Echo messages 0 and 1 swapped: both then compare unequal.
		s := startServer(t, func(c net.Conn) {
			a, b := make([]byte, 32), make([]byte, 32)
			if _, err := io.ReadFull(c, a); err != nil {
				return
			}
			if _, err := io.ReadFull(c, b); err != nil {
				return
			}
			c.Write(b)
			c.Write(a)
			echo(nil)(c)
		})
		// Long enough for the first echoes on a starved machine: a run of
		// 100 ms once ended before any message came back.
		res := runFor(t, Config{Client: client, Addr: s.addr(), Conns: 1, Size: 32, Depth: 2, Duration: time.Second}, 5*time.Second)
		if res.Mismatches != 2 || res.Messages == 0 {
			t.Fatalf("got %+v", res)
		}
	})
}

func TestServerClosingConnectionsIsError(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		// Echo 10 messages' worth, then close.
		s := startServer(t, func(c net.Conn) { io.CopyN(c, c, 640) })
		res := runFor(t, Config{Client: client, Addr: s.addr(), Conns: 4, Size: 64, Duration: 3 * time.Second}, 2*time.Second)
		if res.Errors != 4 || res.FirstError == "" || res.Mismatches != 0 || res.Messages != 40 {
			t.Fatalf("got %+v", res)
		}
		// Every connection failed, so Run ended early with a short window.
		if res.Elapsed >= 3*time.Second {
			t.Fatalf("Elapsed %v", res.Elapsed)
		}
	})
}

func TestSilentServerStopsAtDuration(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		// Reads and never answers: Run must end on time and not count the
		// in-flight message as an error, as ReplyTimeout has not passed.
		s := startServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
		res := runFor(t, Config{Client: client, Addr: s.addr(), Conns: 2, Size: 64, Duration: 200 * time.Millisecond}, time.Second)
		if res.Messages != 0 || res.Errors != 0 {
			t.Fatalf("got %+v", res)
		}
	})
}

func TestReplyTimeoutIsError(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		s := startServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
		cfg := Config{Client: client, Addr: s.addr(), Conns: 2, Size: 64, Duration: 3 * time.Second, ReplyTimeout: 100 * time.Millisecond}
		res := runFor(t, cfg, time.Second)
		if res.Errors != 2 || !strings.Contains(res.FirstError, "no echo within 100ms") {
			t.Fatalf("got %+v", res)
		}
	})
}

func TestNoServerIsError(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		res, err := Run(context.Background(), Config{Client: client, Addr: closedAddr(t), Conns: 3, Size: 8, Duration: time.Second})
		if !errors.Is(err, ErrNoConnection) {
			t.Fatalf("err = %v, want ErrNoConnection", err)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("err = %v, want the connect error wrapped", err)
		}
		if res.Errors != 3 || res.Connected != 0 || res.FirstError == "" {
			t.Fatalf("got %+v", res)
		}
	})
}

func TestValidateRejectsBadValues(t *testing.T) {
	good := Config{Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	cases := map[string]func(*Config){
		"Addr":           func(c *Config) { c.Addr = "" },
		"Addr ":          func(c *Config) { c.Addr = "127.0.0.1" },
		"Addr  ":         func(c *Config) { c.Addr = "unix:" },
		"Conns":          func(c *Config) { c.Conns = 0 },
		"Conns ":         func(c *Config) { c.Conns = -1 },
		"Size":           func(c *Config) { c.Size = 0 },
		"Duration":       func(c *Config) { c.Duration = 0 },
		"Depth":          func(c *Config) { c.Depth = -1 },
		"Warmup":         func(c *Config) { c.Warmup = -time.Second },
		"ConnectTimeout": func(c *Config) { c.ConnectTimeout = -1 },
		"ReplyTimeout":   func(c *Config) { c.ReplyTimeout = -1 },
		"Size  ":         func(c *Config) { c.Size = MaxSize + 1 },
		"Conns  ":        func(c *Config) { c.Conns, c.Size = MaxConns, MaxSize },
		"Client":         func(c *Config) { c.Client = "uring" },
		"Client ":        func(c *Config) { c.Mode, c.Client = ModeChurn, ClientEngine },
	}
	for name, mutate := range cases {
		c := good
		mutate(&c)
		wantConfigError(t, name, c)
	}
}

// wantConfigError fails t unless Validate and Run both refuse c with a
// *ConfigError naming the field that name is, but for trailing spaces
// (which keep the map keys of several cases for one field apart).
func wantConfigError(t *testing.T, name string, c Config) {
	t.Helper()
	err := c.Validate()
	var ce *ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("%s: err = %v, want *ConfigError", name, err)
		return
	}
	if ce.Field != strings.TrimSpace(name) {
		t.Errorf("%s: Field = %q (%v)", name, ce.Field, err)
	}
	if _, err := Run(context.Background(), c); !errors.As(err, &ce) {
		t.Errorf("%s: Run err = %v, want *ConfigError", name, err)
	}
}

// TestCancelStopsRun: a canceled context ends a run long before its
// Duration, with what it measured so far, in every mode and client.
func TestCancelStopsRun(t *testing.T) {
	for name, cfg := range map[string]Config{
		"echo-" + ClientNet:    {Client: ClientNet},
		"echo-" + ClientEngine: {Client: ClientEngine},
		ModeChurn:              {Mode: ModeChurn},
	} {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, echo(nil))
			ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
			defer cancel()
			cfg.Addr, cfg.Conns, cfg.Size, cfg.Duration = s.addr(), 2, 32, time.Minute
			began := time.Now()
			res, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(began); took > time.Second+loadSlack {
				t.Fatalf("took %v", took)
			}
			if res.Errors != 0 || res.Messages == 0 || res.Elapsed > time.Second+loadSlack {
				t.Fatalf("got %+v", res)
			}
		})
	}
}

func TestWarmupNotCounted(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		s := startServer(t, echo(nil))
		began := time.Now()
		res := runFor(t, Config{Client: client, Addr: s.addr(), Conns: 1, Size: 32, Warmup: 200 * time.Millisecond, Duration: 100 * time.Millisecond}, 2*time.Second)
		if took := time.Since(began); took < 300*time.Millisecond {
			t.Fatalf("took %v, want warmup+duration", took)
		}
		if res.Elapsed != 100*time.Millisecond {
			t.Fatalf("Elapsed %v", res.Elapsed)
		}
	})
}

// TestProgressCalled: Progress is called during the warmup and the window,
// Elapsed counting from the window's start once it opens. A loaded machine
// may stall the run for hundreds of milliseconds (ticks are then dropped,
// and a call comes after the window ended), so no check here bounds a time
// by the configured durations: each compares a reported time with the
// clock read when the call came, which no stall can make fail. A stall can
// still leave no call in one phase: that run is tried again, twice at most.
func TestProgressCalled(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		defer func(d time.Duration) { progressInterval = d }(progressInterval)
		progressInterval = 25 * time.Millisecond
		s := startServer(t, echo(nil))
		for attempt := 1; ; attempt++ {
			warm, measured := progressCalls(t, client, s.addr())
			if len(warm) > 0 && len(measured) > 0 && measured[len(measured)-1].Messages > 0 {
				return
			}
			what := fmt.Sprintf("%d calls in the warmup, %d in the window, want some of each, with messages: %+v %+v",
				len(warm), len(measured), warm, measured)
			if attempt == 3 {
				t.Fatal(what)
			}
			t.Logf("run %d: %s; again", attempt, what)
		}
	})
}

// progressCalls runs echo with a warmup and returns the Progress calls of
// each phase, failing t where a call is wrong whatever the machine's load.
func progressCalls(t *testing.T, client, addr string) (warm, measured []Progress) {
	t.Helper()
	const warmup = 120 * time.Millisecond
	type call struct {
		p  Progress
		at time.Duration // since just before Run
	}
	var calls []call // Progress is never called concurrently, nor after Run returns
	began := time.Now()
	cfg := Config{Client: client, Addr: addr, Conns: 2, Size: 32, Warmup: warmup, Duration: 300 * time.Millisecond,
		Progress: func(p Progress) { calls = append(calls, call{p, time.Since(began)}) }}
	runFor(t, cfg, 2*time.Second)
	for i, c := range calls {
		p := c.p
		if p.Warmup {
			if len(measured) > 0 {
				t.Fatalf("call %d in the warmup after one in the window: %+v", i, calls)
			}
			// Counted from the first traffic, which began after Run was called.
			if p.Elapsed <= 0 || p.Elapsed > c.at {
				t.Fatalf("call %d: warmup Elapsed %v, called %v after Run: %+v", i, p.Elapsed, c.at, calls)
			}
			warm = append(warm, p)
			continue
		}
		// The window opens warmup after the first traffic at the earliest:
		// no call before that is in it, and Elapsed counts from then
		// (counted from the first traffic instead, it would exceed this
		// bound by about the warmup).
		if c.at < warmup {
			t.Fatalf("call %d in the window %v after Run, before the warmup ended: %+v", i, c.at, calls)
		}
		if p.Elapsed <= 0 || p.Elapsed > c.at-warmup {
			t.Fatalf("call %d: Elapsed %v, called %v after Run (window open at most %v): %+v",
				i, p.Elapsed, c.at, c.at-warmup, calls)
		}
		measured = append(measured, p)
	}
	for _, phase := range [][]Progress{warm, measured} {
		for i := 1; i < len(phase); i++ {
			if phase[i].Elapsed <= phase[i-1].Elapsed || phase[i].Messages < phase[i-1].Messages {
				t.Fatalf("Elapsed or Messages went back: %+v", calls)
			}
		}
	}
	return warm, measured
}

func TestNoGoroutineLeak(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		before := runtime.NumGoroutine()
		func() {
			s := startServer(t, echo(nil))
			defer s.stop()
			runFor(t, Config{Client: client, Addr: s.addr(), Conns: 8, Size: 64, Depth: 4, Duration: 100 * time.Millisecond}, 2*time.Second)
			s2 := startServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
			defer s2.stop()
			runFor(t, Config{Client: client, Addr: s2.addr(), Conns: 8, Size: 64, Duration: 100 * time.Millisecond}, 2*time.Second)
		}()
		goroutinesBackTo(t, before)
	})
}

func TestTableAndJSON(t *testing.T) {
	r := Result{
		Mode: ModeEcho, Addr: "127.0.0.1:9", Conns: 50, Size: 64, Depth: 2, Connected: 49,
		Elapsed: 2 * time.Second, Messages: 123456, Bytes: 123456 * 64,
		MsgsPerSec: 61728, MBPerSec: 3.950592,
		P50: 250 * time.Microsecond, P90: 1500 * time.Microsecond, P99: 3 * time.Millisecond,
		Max: 1500 * time.Millisecond, Mean: 300 * time.Microsecond,
		Errors: 1, Mismatches: 2, FirstError: "conn 7: boom",
	}
	tab := r.Table()
	for _, want := range []string{"127.0.0.1:9", "50 (49 connected)", "64 B", "123456", "7901184", "61728.0", "3.95",
		"250.0 us", "1.500 ms", "3.000 ms", "1.500 s", "conn 7: boom", "errors        1", "mismatches    2"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"mode": "echo", "conns_per_sec": 0.0,
		"addr": "127.0.0.1:9", "conns": 50.0, "size": 64.0, "depth": 2.0, "connected": 49.0,
		"elapsed_s": 2.0, "messages": 123456.0, "bytes": 7901184.0, "msgs_per_sec": 61728.0, "mb_per_sec": 3.950592,
		"p50_s": 0.00025, "p90_s": 0.0015, "p99_s": 0.003, "max_s": 1.5, "mean_s": 0.0003,
		"errors": 1.0, "mismatches": 2.0, "first_error": "conn 7: boom",
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("keys: %v", m)
	}
}

func TestNoAllocationPerMessage(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		s := startServer(t, echo(nil))
		// Setup allocates a few hundred objects, the message loop nothing:
		// what a long run allocates beyond a short one, per message it
		// sends beyond it, leaves setup out, however few messages a loaded
		// machine lets through.
		run := func(d time.Duration) (mallocs, msgs uint64) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res := runFor(t, Config{Client: client, Addr: s.addr(), Conns: 2, Size: 64, Depth: 4, Duration: d}, d+2*time.Second)
			runtime.ReadMemStats(&after)
			return after.Mallocs - before.Mallocs, res.Messages
		}
		for d := 400 * time.Millisecond; ; d *= 2 {
			shortA, shortM := run(100 * time.Millisecond)
			longA, longM := run(d)
			if longM < shortM+2000 && d < 4*time.Second {
				continue // too few messages to tell: run longer
			}
			perMsg := (float64(longA) - float64(shortA)) / (float64(longM) - float64(shortM))
			bound := 0.01 // none at all, but for the odd runtime allocation
			if poolDrops {
				bound = 0.5 // an allocation per message would still pass it
			}
			if longM <= shortM || perMsg > bound {
				t.Fatalf("%d and %d messages, %d and %d allocations: %.3f per message", shortM, longM, shortA, longA, perMsg)
			}
			return
		}
	})
}

// goroutinesBackTo fails t unless the goroutine count falls back to
// before within a second (Run must leave nothing running).
func goroutinesBackTo(t *testing.T, before int) {
	t.Helper()
	var n int
	for range 100 {
		if n = runtime.NumGoroutine(); n <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	t.Fatalf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
}
