package poller

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/pyiocp/pyiocp/gomod/internal/winapi"
)

// AcceptQueued takes a connection the kernel has already completed on the
// listening socket s without waiting (s is non-blocking, and no AcceptEx
// is posted on it any more): ok is false once none is left. A closing
// listener takes its backlog so that closing it does not reset connections
// whose clients think them established. The socket accept() returns is
// overlapped, as s is, so the port can take it like an AcceptEx one.
func AcceptQueued(s Sock) (fd Sock, peer netip.AddrPort, ok bool, err error) {
	for {
		var rsa windows.RawSockaddrAny
		n := int32(unsafe.Sizeof(rsa))
		nfd, err := winapi.Accept(s, &rsa, &n)
		switch err {
		case nil:
			return nfd, fromRaw(&rsa), true, nil
		case windows.WSAECONNRESET, windows.WSAEINTR:
			continue // reset while queued: the next one
		case windows.WSAEWOULDBLOCK:
			return NoSock, peer, false, nil
		default:
			return NoSock, peer, false, err
		}
	}
}
