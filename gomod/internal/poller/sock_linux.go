package poller

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// Sock is an OS socket: a file descriptor on Linux.
type Sock = int

// NoSock is never a valid socket.
const NoSock Sock = -1

// ListenTCP opens a non-blocking listening socket bound to addr and returns
// it with the address it is bound to (the port filled in when addr's is 0).
// Accepted sockets inherit TCP_NODELAY from it: echo-style request/response
// traffic must not wait for Nagle's algorithm.
func ListenTCP(addr netip.AddrPort, backlog int, reusePort bool) (Sock, netip.AddrPort, error) {
	s, err := newTCPSocket(addr.Addr())
	if err != nil {
		return NoSock, netip.AddrPort{}, err
	}
	fail := func(err error) (Sock, netip.AddrPort, error) {
		unix.Close(s)
		return NoSock, netip.AddrPort{}, err
	}
	if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail(err)
	}
	if reusePort {
		if err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail(err)
		}
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return fail(err)
	}
	if err := unix.Bind(s, toSockaddr(addr)); err != nil {
		return fail(err)
	}
	if err := unix.Listen(s, backlog); err != nil {
		return fail(err)
	}
	local, err := LocalAddr(s)
	if err != nil {
		return fail(err)
	}
	return s, local, nil
}

// NewConnectSocket opens a non-blocking TCP socket of addr's family, ready
// for PostConnect.
func NewConnectSocket(addr netip.AddrPort) (Sock, error) {
	s, err := newTCPSocket(addr.Addr())
	if err != nil {
		return NoSock, err
	}
	if err := unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(s)
		return NoSock, err
	}
	return s, nil
}

func newTCPSocket(ip netip.Addr) (Sock, error) {
	family := unix.AF_INET
	if ip.Is6() && !ip.Is4In6() {
		family = unix.AF_INET6
	}
	return unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
}

// AcceptReady reports, without waiting, whether listening socket s has a
// connection to accept.
func AcceptReady(s Sock) bool {
	fds := []unix.PollFd{{Fd: int32(s), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&unix.POLLIN != 0
}

// CloseSock closes s; an orderly close (FIN) when the kernel has sent all.
func CloseSock(s Sock) error { return unix.Close(s) }

// AbortSock closes s with a reset (SO_LINGER 0), dropping unsent data.
func AbortSock(s Sock) error {
	lingerZero(s)
	return unix.Close(s)
}

// lingerZero makes the close of s send a reset and drop unsent data.
func lingerZero(s Sock) {
	unix.SetsockoptLinger(s, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

// ShutdownWrite sends FIN after the bytes already written: a half-close.
func ShutdownWrite(s Sock) error { return unix.Shutdown(s, unix.SHUT_WR) }
