package engine_test

import (
	"bufio"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// What the shared tests need that each OS does its own way (Linux here).

// The OS errors the tests expect, as this OS spells them.
var (
	errReset     error = syscall.ECONNRESET
	errRefused   error = syscall.ECONNREFUSED
	errAddrInUse error = syscall.EADDRINUSE
)

func threadID() int { return syscall.Gettid() }

// slowdown scales the tests' timing bounds: 1 natively.
const slowdown = 1

// resetsLost: a peer's reset is seen as one (ECONNRESET).
const resetsLost = false

// acceptDropsResets: a connection reset before it was accepted is still
// accepted (and then reads ECONNRESET).
const acceptDropsResets = false

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// fdTargets describes this process's open descriptors, for leak reports.
func fdTargets() string {
	ents, _ := os.ReadDir("/proc/self/fd")
	out := ""
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out += e.Name() + "=" + target + " "
	}
	return out
}

// rssBytes is the process's resident set (VmRSS).
func rssBytes() int64 { return procStatus("VmRSS:") }

// peakRSS is the resident set's peak since resetPeakRSS (VmHWM).
func peakRSS() int64 { return procStatus("VmHWM:") }

// resetPeakRSS restarts VmHWM at the current RSS (Linux >= 4.0).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func procStatus(key string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// unacceptingListener listens on 127.0.0.1 with a backlog of 0 and never
// accepts (fullListener fills its queue).
func unacceptingListener(t *testing.T) (netip.AddrPort, func()) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	syscall.Listen(fd, 0)
	sa, _ := syscall.Getsockname(fd)
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	return addr, func() { syscall.Close(fd) }
}

// setRecvBuffer sets a socket's SO_RCVBUF (from net.Dialer's Control).
func setRecvBuffer(fd uintptr, n int) error {
	return syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n)
}
