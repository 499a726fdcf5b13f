package engine_test

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/windows"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// checkKeepParams: Windows sets the keepalive idle time and interval with
// SIO_KEEPALIVE_VALS, which cannot be read back: that they were set
// without an error is what is checked.
func checkKeepParams(*testing.T, *engine.Conn, int, int, int) {}

// keepCount is a keepalive count to set, or 0 where the OS cannot set one
// (TCP_KEEPCNT: Windows 10 1703 and later; not Wine).
func keepCount(n int) int {
	s, err := windows.Socket(windows.AF_INET, windows.SOCK_STREAM, windows.IPPROTO_TCP)
	if err != nil {
		return 0
	}
	defer windows.Closesocket(s)
	if windows.SetsockoptInt(s, windows.IPPROTO_TCP, windows.TCP_KEEPCNT, n) != nil {
		return 0
	}
	return n
}

// TestKeepCountWhereUnsupported: where the OS cannot set a keepalive count,
// asking for one is an error that says so, not a count silently ignored.
func TestKeepCountWhereUnsupported(t *testing.T) {
	if keepCount(3) != 0 {
		t.Skip("this Windows sets keepalive counts (TestConnSockOptions checks them)")
	}
	r := newRecorder()
	_, _, c := serveOne(t, r, "iocp")
	if err := c.SetKeepAlive(true, 10*time.Second, time.Second, 3); !errors.Is(err, windows.WSAENOPROTOOPT) {
		t.Errorf("keepalive count on an OS without TCP_KEEPCNT: %v", err)
	}
}
