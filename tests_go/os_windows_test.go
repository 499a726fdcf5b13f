package engine_test

import (
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// What the shared tests need that each OS does its own way (Windows here).

// The OS errors the tests expect, as Winsock spells them.
var (
	errReset     error = windows.WSAECONNRESET
	errRefused   error = windows.WSAECONNREFUSED
	errAddrInUse error = windows.WSAEADDRINUSE
)

func threadID() int { return int(windows.GetCurrentThreadId()) }

// underWine: the tests run under Wine (CI on Linux), whose ntdll has
// wine_get_version.
var underWine = windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil

// slowdown scales the tests' timing bounds. Wine adds about a millisecond
// to each I/O (a loopback round trip of Go's own net package takes ~1 ms
// under it): it proves correctness, not speed.
var slowdown = map[bool]time.Duration{false: 1, true: 4}[underWine]

// resetsLost: Wine reports a peer's reset as the end of the stream (Go's
// net package sees EOF too), so a reset connection may close cleanly.
var resetsLost = underWine

// acceptDropsResets: AcceptEx fails for a connection reset before it was
// accepted (ERROR_NETNAME_DELETED; WSAENOTCONN under Wine), and the port
// posts the accept again: that connection is never accepted.
const acceptDropsResets = true

// openFDs counts this process's open file-like handles (sockets, files,
// pipes: what a descriptor is on Linux); threads, events and ports the Go
// runtime keeps are not counted. Wine's GetProcessHandleCount says 0, so
// the handle table is probed: its values are small multiples of 4, given
// out lowest first.
func openFDs(*testing.T) int {
	n := 0
	for h, gap := windows.Handle(4), 0; gap < 256; h += 4 {
		var flags uint32
		if getHandleInformation(h, &flags) != nil {
			gap++
			continue
		}
		gap = 0
		if t, _ := windows.GetFileType(h); t != windows.FILE_TYPE_UNKNOWN {
			n++
		}
	}
	return n
}

// fdTargets: Windows does not name a process's handles.
func fdTargets() string { return "handles" }

func memoryCounters() processMemoryCounters {
	var c processMemoryCounters
	c.Cb = uint32(unsafe.Sizeof(c))
	getProcessMemoryInfo(windows.CurrentProcess(), &c, c.Cb)
	return c
}

// rssBytes is the process's working set.
func rssBytes() int64 { return int64(memoryCounters().WorkingSetSize) }

// peakRSS is the working set's peak since the process started: Windows
// cannot restart it, so resetPeakRSS does nothing.
func peakRSS() int64 { return int64(memoryCounters().PeakWorkingSetSize) }

func resetPeakRSS() {}

// unacceptingListener listens on 127.0.0.1 with a backlog of 0 and never
// accepts (fullListener fills its queue).
func unacceptingListener(t *testing.T) (netip.AddrPort, func()) {
	t.Helper()
	fd, err := windows.Socket(windows.AF_INET, windows.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := windows.Bind(fd, &windows.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	windows.Listen(fd, 0)
	sa, _ := windows.Getsockname(fd)
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*windows.SockaddrInet4).Port))
	return addr, func() { windows.Closesocket(fd) }
}

// setRecvBuffer sets a socket's SO_RCVBUF (from net.Dialer's Control).
func setRecvBuffer(fd uintptr, n int) error {
	return windows.SetsockoptInt(windows.Handle(fd), windows.SOL_SOCKET, windows.SO_RCVBUF, n)
}
