package poller

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/windows"
)

// newUDPSocket opens an overlapped, non-inheritable UDP socket. ICMP
// port-unreachable replies to its sends are not reported as
// WSAECONNRESET on its receives (SIO_UDP_CONNRESET off): on an
// unconnected socket they say nothing about the datagrams to come, and
// Linux does not report them there either.
func newUDPSocket(v6 bool) (Sock, error) {
	if err := wsaStartup(); err != nil {
		return NoSock, err
	}
	family := int32(windows.AF_INET)
	if v6 {
		family = windows.AF_INET6
	}
	s, err := windows.WSASocket(family, windows.SOCK_DGRAM, windows.IPPROTO_UDP, nil, 0,
		windows.WSA_FLAG_OVERLAPPED|windows.WSA_FLAG_NO_HANDLE_INHERIT)
	if err != nil {
		return NoSock, err
	}
	off, n := uint32(0), uint32(0)
	windows.WSAIoctl(s, windows.SIO_UDP_CONNRESET, (*byte)(unsafe.Pointer(&off)), 4, nil, 0, &n, nil, 0)
	return s, nil
}

// udpOptions: reusePort has no Windows equivalent (WSAEOPNOTSUPP, as for
// a listener).
func udpOptions(s Sock, v6, reusePort, broadcast bool) error {
	if reusePort {
		return windows.WSAEOPNOTSUPP
	}
	var err error
	if v6 {
		err = windows.SetsockoptInt(s, windows.IPPROTO_IPV6, windows.IPV6_V6ONLY, 0)
	}
	if err == nil && broadcast {
		err = windows.SetsockoptInt(s, windows.SOL_SOCKET, windows.SO_BROADCAST, 1)
	}
	return err
}

func udpBind(s Sock, a netip.AddrPort, v6 bool) error { return windows.Bind(s, dgramSockaddr(a, v6)) }

func udpConnect(s Sock, a netip.AddrPort, v6 bool) error {
	return windows.Connect(s, dgramSockaddr(a, v6))
}

// sockV6 reports whether bound socket s is IPv6.
func sockV6(s Sock) bool {
	a, err := LocalAddr(s)
	return err == nil && a.Addr().Is6() && !a.Addr().Is4In6()
}
