package engine_test

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// intOpt reads an int socket option of c (Windows gives some, such as
// TCP_NODELAY, in one byte).
func intOpt(t *testing.T, c *engine.Conn, level, opt int) int {
	t.Helper()
	b, err := c.GetSockOpt(level, opt, 4)
	if err != nil || len(b) == 0 {
		t.Fatalf("getsockopt(%d, %d): %v %v", level, opt, b, err)
	}
	var four [4]byte
	copy(four[:], b)
	return int(int32(binary.LittleEndian.Uint32(four[:])))
}

// TestSockOptionsDefault: accepted and connected sockets have TCP_NODELAY
// and no keepalive, as before socket options existed.
func TestSockOptionsDefault(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		m, addr := serve(t, r, backend)
		dial(t, addr)
		in := r.nextConn(t)
		out, err := m.Connect(netip.MustParseAddrPort(addr), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		r.nextConn(t)
		for _, c := range []*engine.Conn{in, out} {
			if intOpt(t, c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY) == 0 {
				t.Error("TCP_NODELAY off")
			}
			if intOpt(t, c, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) != 0 {
				t.Error("keepalive on")
			}
		}
	})
}

// TestSockOptionsListenAndConnect: a listener's options reach every socket
// it accepts; a connect's, its socket.
func TestSockOptionsListenAndConnect(t *testing.T) {
	so := engine.SockOptions{Nagle: true, KeepAlive: true, KeepIdle: 30 * time.Second,
		KeepIntvl: 5 * time.Second, KeepCount: keepCount(4), RecvBuf: 96 << 10, SendBuf: 80 << 10}
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		m := newManager(t, r, backend)
		l := listenAndStart(t, m, engine.WithSockOptions(so))
		t.Cleanup(func() { closeManager(t, m) })
		dial(t, l.Addr().String())
		in := r.nextConn(t)
		out, err := m.Connect(l.Addr(), time.Second, so)
		if err != nil {
			t.Fatal(err)
		}
		r.nextConn(t)
		for _, c := range []*engine.Conn{in, out} {
			if intOpt(t, c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY) != 0 {
				t.Error("TCP_NODELAY on with Nagle")
			}
			if intOpt(t, c, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) == 0 {
				t.Error("keepalive off")
			}
			// Linux doubles what it is given, for its bookkeeping.
			if got := intOpt(t, c, syscall.SOL_SOCKET, syscall.SO_RCVBUF); got < so.RecvBuf || got > 2*so.RecvBuf {
				t.Errorf("SO_RCVBUF %d, want %d", got, so.RecvBuf)
			}
			if got := intOpt(t, c, syscall.SOL_SOCKET, syscall.SO_SNDBUF); got < so.SendBuf || got > 2*so.SendBuf {
				t.Errorf("SO_SNDBUF %d, want %d", got, so.SendBuf)
			}
			checkKeepParams(t, c, 30, 5, keepCount(4))
		}
		bad := []engine.SockOptions{{KeepIdle: -time.Second}, {KeepCount: 128}, {RecvBuf: -1}, {SendBuf: 2 << 30}}
		for _, b := range bad {
			var oe *engine.OptionError
			if _, err := m.Listen(loopback, engine.WithSockOptions(b)); !errors.As(err, &oe) {
				t.Errorf("Listen with %+v: %v", b, err)
			}
			if _, err := m.Connect(l.Addr(), time.Second, b); !errors.As(err, &oe) {
				t.Errorf("Connect with %+v: %v", b, err)
			}
		}
	})
}

// TestConnSockOptions: a live connection's options change from any
// goroutine; a closed one's fail with ErrClosed.
func TestConnSockOptions(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		_, cli, c := serveOne(t, r, backend)
		done := make(chan error, 1)
		go func() {
			err := c.SetNoDelay(false)
			if err == nil {
				err = c.SetKeepAlive(true, 20*time.Second, 3*time.Second, keepCount(2))
			}
			if err == nil {
				var four [4]byte
				binary.NativeEndian.PutUint32(four[:], 50<<10)
				err = c.SetSockOpt(syscall.SOL_SOCKET, syscall.SO_SNDBUF, four[:])
			}
			done <- err
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if intOpt(t, c, syscall.IPPROTO_TCP, syscall.TCP_NODELAY) != 0 ||
			intOpt(t, c, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) == 0 ||
			intOpt(t, c, syscall.SOL_SOCKET, syscall.SO_SNDBUF) < 50<<10 {
			t.Error("options not set")
		}
		checkKeepParams(t, c, 20, 3, keepCount(2))
		if err := c.SetKeepAlive(false, 0, 0, 0); err != nil || intOpt(t, c, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE) != 0 {
			t.Errorf("keepalive off: %v", err)
		}
		if _, err := c.GetSockOpt(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 0); err == nil {
			t.Error("buflen 0 accepted")
		}
		cli.Close()
		r.waitClosed(t, c.ID())
		if err := c.SetNoDelay(true); !errors.Is(err, engine.ErrClosed) {
			t.Errorf("SetNoDelay on a closed connection: %v", err)
		}
		if _, err := c.GetSockOpt(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 4); !errors.Is(err, engine.ErrClosed) {
			t.Errorf("GetSockOpt on a closed connection: %v", err)
		}
		if err := c.SetIdleTimeout(time.Second); !errors.Is(err, engine.ErrClosed) {
			t.Errorf("SetIdleTimeout on a closed connection: %v", err)
		}
	})
}

// TestConnIdleTimeout: a connection's own idle timeout beats the
// manager's, either way: one closes though the manager has none, one
// stays open though the manager's would close it.
func TestConnIdleTimeout(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		_, addr := serve(t, r, backend, engine.WithIdleTimeout(200*time.Millisecond))
		dial(t, addr)
		kept := r.nextConn(t)
		dial(t, addr)
		short := r.nextConn(t)
		if err := kept.SetIdleTimeout(0); err != nil {
			t.Fatal(err)
		}
		if err := short.SetIdleTimeout(50 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := r.waitClosed(t, short.ID()); !errors.Is(err, engine.ErrIdleTimeout) {
			t.Errorf("short: closed with %v", err)
		}
		t.Logf("own idle timeout of 50 ms: closed after %v", time.Since(start))
		time.Sleep(400 * time.Millisecond) // twice the manager's
		if kept.Closed() {
			t.Error("a connection with no idle timeout of its own was closed")
		}
		if err := kept.SetIdleTimeout(-1); err != nil { // the manager's again
			t.Fatal(err)
		}
		if err := r.waitClosed(t, kept.ID()); !errors.Is(err, engine.ErrIdleTimeout) {
			t.Errorf("kept: closed with %v", err)
		}
	})
}
