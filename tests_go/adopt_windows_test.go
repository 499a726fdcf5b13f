package engine_test

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/windows"
)

// rawSocket opens an overlapped TCP socket bound to loopback (port 0),
// listening when asked, as another program would hand it over: blocking,
// no option set.
func rawSocket(t *testing.T, listening bool) (uintptr, netip.AddrPort) {
	t.Helper()
	var d windows.WSAData
	if err := windows.WSAStartup(uint32(0x202), &d); err != nil {
		t.Fatal(err)
	}
	s, err := windows.WSASocket(windows.AF_INET, windows.SOCK_STREAM, windows.IPPROTO_TCP, nil, 0,
		windows.WSA_FLAG_OVERLAPPED)
	if err != nil {
		t.Fatal(err)
	}
	if err := windows.Bind(s, &windows.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if listening {
		if err := windows.Listen(s, 64); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := windows.Getsockname(s)
	if err != nil {
		t.Fatal(err)
	}
	in := sa.(*windows.SockaddrInet4)
	return uintptr(s), netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port))
}

// isOpen reports whether socket s is open.
func isOpen(s uintptr) bool {
	_, err := windows.GetsockoptInt(windows.Handle(s), windows.SOL_SOCKET, windows.SO_RCVBUF)
	return err == nil
}
