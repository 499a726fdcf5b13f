package poller

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// AcceptQueued takes a connection the kernel has already completed on the
// listening socket s without waiting (s is non-blocking): ok is false once
// none is left. A closing listener takes its backlog so that closing it
// does not reset connections whose clients think them established.
func AcceptQueued(s Sock) (fd Sock, peer netip.AddrPort, ok bool, err error) {
	for {
		nfd, sa, err := unix.Accept4(s, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch err {
		case nil:
			switch sa := sa.(type) {
			case *unix.SockaddrInet4:
				peer = fromSockaddr(sa)
			case *unix.SockaddrInet6:
				peer = fromSockaddr(sa)
			}
			return nfd, peer, true, nil
		case unix.ECONNABORTED, unix.EINTR:
			continue // reset while queued: the next one
		case unix.EAGAIN:
			return NoSock, peer, false, nil
		default:
			return NoSock, peer, false, err
		}
	}
}
