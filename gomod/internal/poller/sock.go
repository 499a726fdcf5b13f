package poller

import "net/netip"

// Opening sockets: the steps both OSes take alike, around what each does
// its own way (sock_linux.go, sock_windows.go: newSocket, listenOptions,
// connectOptions, bindListen; sockopt.go: the socket options).

// ListenTCP opens a listening socket bound to addr, with o (before the
// bind: the receive buffer decides the window scale), and returns it with
// the address it is bound to (the port filled in when addr's is 0).
func ListenTCP(addr netip.AddrPort, backlog int, reusePort bool, o *SockOptions) (Sock, netip.AddrPort, error) {
	s, err := newTCPSocket(addr.Addr())
	if err != nil {
		return NoSock, netip.AddrPort{}, err
	}
	err = listenOptions(s, reusePort)
	if err == nil {
		err = o.Apply(s)
	}
	if err == nil {
		err = bindListen(s, addr, backlog)
	}
	return bound(s, err)
}

// bound ends the opening of a bound socket s: its local address, or, on
// err or on any error reading it, s closed and the error.
func bound(s Sock, err error) (Sock, netip.AddrPort, error) {
	var local netip.AddrPort
	if err == nil {
		local, err = LocalAddr(s)
	}
	if err != nil {
		CloseSock(s)
		return NoSock, netip.AddrPort{}, err
	}
	return s, local, nil
}

// NewConnectSocket opens a TCP socket of addr's family, with o, ready for
// PostConnect.
func NewConnectSocket(addr netip.AddrPort, o *SockOptions) (Sock, error) {
	s, err := newTCPSocket(addr.Addr())
	if err != nil {
		return NoSock, err
	}
	err = o.Apply(s)
	if err == nil {
		err = connectOptions(s, addr)
	}
	if err != nil {
		CloseSock(s)
		return NoSock, err
	}
	return s, nil
}

// newTCPSocket opens a TCP socket of ip's family (an IPv4-mapped address is
// IPv4's).
func newTCPSocket(ip netip.Addr) (Sock, error) {
	family := afInet
	if ip.Is6() && !ip.Is4In6() {
		family = afInet6
	}
	return newSocket(family)
}
