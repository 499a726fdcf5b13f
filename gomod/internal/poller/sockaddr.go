package poller

import (
	"net/netip"
	"unsafe"
)

// The conversions between netip and the OS's socket addresses, written
// once over the names sockaddr_linux.go and sockaddr_windows.go give the
// two OSes' types (their fields are spelled alike).

// LocalAddr is the address s is bound to.
func LocalAddr(s Sock) (netip.AddrPort, error) {
	sa, err := getsockname(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return fromSockaddr(sa), nil
}

// PeerAddr is the address s is connected to.
func PeerAddr(s Sock) (netip.AddrPort, error) {
	sa, err := getpeername(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return fromSockaddr(sa), nil
}

func toSockaddr(a netip.AddrPort) sockaddr {
	ip := a.Addr()
	if ip.Is4() || ip.Is4In6() {
		return &sockaddrInet4{Port: int(a.Port()), Addr: ip.Unmap().As4()}
	}
	return &sockaddrInet6{Port: int(a.Port()), Addr: ip.As16(), ZoneId: zoneIndex(ip)}
}

func fromSockaddr(sa sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *sockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *sockaddrInet6:
		return netip.AddrPortFrom(withScope(netip.AddrFrom16(sa.Addr), sa.ZoneId), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// fromRaw decodes the address the kernel filled in (accept4, or what
// GetAcceptExSockaddrs points to), without allocating (but for the zone
// of a link-local address: see zone.go).
func fromRaw(rsa *rawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case afInet:
		p := (*rawSockaddrInet4)(unsafe.Pointer(rsa))
		port := uint16(p.Port>>8) | uint16(p.Port<<8)
		return netip.AddrPortFrom(netip.AddrFrom4(p.Addr), port)
	case afInet6:
		p := (*rawSockaddrInet6)(unsafe.Pointer(rsa))
		port := uint16(p.Port>>8) | uint16(p.Port<<8)
		return netip.AddrPortFrom(withScope(netip.AddrFrom16(p.Addr), p.Scope_id), port)
	}
	return netip.AddrPort{}
}
