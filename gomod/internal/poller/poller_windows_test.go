package poller

import (
	"testing"

	"golang.org/x/sys/windows"
)

// The Windows side of the shared tests' hooks: IOCP has no provided buffers
// and no read-ahead.

// The io_uring buffer sizes the shared tests scale their data by: they move
// as much data through IOCP, and more sockets than the arena serves in one
// Wait.
const (
	recvBufSize  = 32 << 10
	recvBufCount = 256
)

func hasSingleShot(string) bool { return false }

func setSingleShot(bool) {}

func setRecvBuffer(s Sock, n int) error {
	return windows.SetsockoptInt(s, windows.SOL_SOCKET, windows.SO_RCVBUF, n)
}

func readAhead(Poller, Ref) (int, bool) { return 0, false }

func ringStarved(Poller) (uint64, bool) { return 0, false }

// checkSettled: after a test every operation context is back in the pool
// (each posted operation completed exactly once) and every socket was
// unregistered.
func checkSettled(t *testing.T, p Poller) {
	ip := p.(*iocp)
	if held := ip.ctxs.held(); held != 0 {
		t.Errorf("%d operation contexts not back in the pool", held)
	}
	if held := ip.firstBufs.held(); held != 0 {
		t.Errorf("%d first-data accept buffers not back in the pool", held)
	}
	registered := 0
	for _, st := range ip.socks.states {
		if st != nil {
			registered++
		}
	}
	if registered != 0 {
		t.Errorf("%d sockets still registered", registered)
	}
}
