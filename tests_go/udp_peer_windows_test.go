package engine_test

import (
	"errors"
	"net/netip"
	"time"

	"golang.org/x/sys/windows"
)

// winUDPPeer is a blocking Winsock UDP socket: Go's net package sets
// SIO_UDP_CONNRESET on its UDP sockets, which Wine refuses.
type winUDPPeer struct {
	s        windows.Handle
	addr     netip.AddrPort
	deadline time.Time
}

func openUDPPeer(addr netip.AddrPort) (*winUDPPeer, error) {
	family := windows.AF_INET
	if addr.Addr().Is6() {
		family = windows.AF_INET6
	}
	s, err := windows.Socket(family, windows.SOCK_DGRAM, windows.IPPROTO_UDP)
	if err != nil {
		return nil, err
	}
	p := &winUDPPeer{s: s}
	windows.SetsockoptInt(s, windows.SOL_SOCKET, windows.SO_RCVBUF, 1<<20)
	if err = windows.Bind(s, sockaddrOf(addr)); err == nil {
		var sa windows.Sockaddr
		if sa, err = windows.Getsockname(s); err == nil {
			p.addr = addrOf(sa)
			return p, nil
		}
	}
	windows.Closesocket(s)
	return nil, err
}

func (p *winUDPPeer) Addr() netip.AddrPort { return p.addr }

func (p *winUDPPeer) Close() error { return windows.Closesocket(p.s) }

func (p *winUDPPeer) SetReadDeadline(t time.Time) error {
	p.deadline = t
	return nil
}

func (p *winUDPPeer) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	if err := windows.Sendto(p.s, b, 0, sockaddrOf(addr)); err != nil {
		return 0, err
	}
	return len(b), nil
}

// errPeerTimeout is a read that passed the deadline.
var errPeerTimeout = errors.New("udp peer: read timed out")

func (p *winUDPPeer) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	left := time.Until(p.deadline)
	if left <= 0 {
		return 0, netip.AddrPort{}, errPeerTimeout
	}
	windows.SetsockoptInt(p.s, windows.SOL_SOCKET, windows.SO_RCVTIMEO, int(max(left/time.Millisecond, 1)))
	n, from, err := windows.Recvfrom(p.s, b, 0)
	if err == windows.WSAETIMEDOUT {
		err = errPeerTimeout
	}
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	return n, addrOf(from), nil
}

func sockaddrOf(a netip.AddrPort) windows.Sockaddr {
	if a.Addr().Is4() {
		return &windows.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	}
	return &windows.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
}

func addrOf(sa windows.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *windows.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *windows.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
