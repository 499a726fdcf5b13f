package poller

import "net/netip"

// Opening sockets: the steps both OSes take alike, around what each does
// its own way (sock_linux.go, sock_windows.go: newSocket, listenOptions,
// connectOptions, setNoDelay, bindListen).

// ListenTCP opens a listening socket bound to addr and returns it with the
// address it is bound to (the port filled in when addr's is 0). Accepted
// sockets get TCP_NODELAY from it: request/response traffic must not wait
// for Nagle's algorithm.
func ListenTCP(addr netip.AddrPort, backlog int, reusePort bool) (Sock, netip.AddrPort, error) {
	s, err := newTCPSocket(addr.Addr())
	if err != nil {
		return NoSock, netip.AddrPort{}, err
	}
	err = listenOptions(s, reusePort)
	if err == nil {
		err = setNoDelay(s)
	}
	if err == nil {
		err = bindListen(s, addr, backlog)
	}
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

// NewConnectSocket opens a TCP socket of addr's family, with TCP_NODELAY,
// ready for PostConnect.
func NewConnectSocket(addr netip.AddrPort) (Sock, error) {
	s, err := newTCPSocket(addr.Addr())
	if err != nil {
		return NoSock, err
	}
	err = setNoDelay(s)
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
