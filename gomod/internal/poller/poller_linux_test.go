package poller

import (
	"testing"
	"unsafe"

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
func readAhead(p Poller, s Ref) (int, bool) {
	if u, ok := p.(*uring); ok {
		return u.fds.get(s).aheadLen(), true
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

// checkSettled: io_uring has every provided buffer accounted for (offered
// to the kernel, returned, to be returned at the next Wait, or held as
// read-ahead); epoll keeps no per-operation state to check.
func checkSettled(t *testing.T, p Poller) {
	t.Helper()
	if u, ok := p.(*uring); ok && u.buf != nil {
		if n := ringAccounted(u); n != recvBufCount {
			t.Fatalf("%d of %d provided buffers accounted for", n, recvBufCount)
		}
	}
}

func ringAccounted(u *uring) int {
	n := u.buf.offered + len(u.buf.returned) + len(u.recycle) + u.holding
	for _, d := range u.done.q[u.done.head:] {
		if d.bid >= 0 && d.bid&dgramBufMarker == 0 { // the stream ring's
			n++
		}
	}
	return n
}

// ringBuffer is the provided buffer data lies in, or -1 when it lies
// elsewhere (epoll, or io_uring's delivery arena).
func ringBuffer(p Poller, data []byte) int {
	u, ok := p.(*uring)
	if !ok || len(data) == 0 {
		return -1
	}
	base := uintptr(unsafe.Pointer(&u.buf.bufs[0]))
	at := uintptr(unsafe.Pointer(&data[0]))
	if at < base || at >= base+uintptr(len(u.buf.bufs)) {
		return -1
	}
	return int((at - base) / recvBufSize)
}
