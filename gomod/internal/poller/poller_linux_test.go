package poller

import (
	"testing"

	"golang.org/x/sys/unix"
)

// The Linux side of the shared tests' hooks into backend internals.

// hasSingleShot: io_uring runs the tests with capped multishot receives,
// then again with single-shot ones.
func hasSingleShot(name string) bool { return name == "io_uring" && uringProbe.capped }

func setSingleShot(on bool) { uringSingleShot = on }

func setRecvBuffer(s Sock, n int) error {
	return unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
}

// readAhead is how many bytes io_uring read from s beyond what was delivered.
func readAhead(p Poller, s Sock) (int, bool) {
	if u, ok := p.(*uring); ok {
		return len(u.fds[s].ahead), true
	}
	return 0, false
}

// ringStarved is how many io_uring receives found the buffer ring empty.
func ringStarved(p Poller) (uint64, bool) {
	if u, ok := p.(*uring); ok {
		return u.starved, true
	}
	return 0, false
}

// checkSettled: the Linux backends keep no per-operation state to check.
func checkSettled(*testing.T, Poller) {}
