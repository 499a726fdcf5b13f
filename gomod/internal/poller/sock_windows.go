package poller

import (
	"net/netip"
	"sync"

	"golang.org/x/sys/windows"

	"github.com/pyiocp/pyiocp/gomod/internal/winapi"
)

// Sock is an OS socket: a SOCKET handle on Windows.
type Sock = windows.Handle

// NoSock is never a valid socket.
const NoSock Sock = windows.InvalidHandle

// wsaStartup initialises Winsock once for the process (it counts callers,
// so the net package's own call does not conflict).
var wsaStartup = sync.OnceValue(func() error {
	var d windows.WSAData
	return windows.WSAStartup(uint32(0x202), &d)
})

// listenOptions: SO_REUSEADDR is not set: on Windows it would let another
// socket bind the same port, and TIME_WAIT does not block a listener
// there. reusePort has no Windows equivalent: asking for it is
// WSAEOPNOTSUPP (Python's errno.EOPNOTSUPP there).
func listenOptions(s Sock, reusePort bool) error {
	if reusePort {
		return windows.WSAEOPNOTSUPP
	}
	return nil
}

// connectOptions binds s to the wildcard address of addr's family, as
// ConnectEx requires.
func connectOptions(s Sock, addr netip.AddrPort) error {
	any := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		any = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	}
	return windows.Bind(s, toSockaddr(any))
}

func bindListen(s Sock, addr netip.AddrPort, backlog int) error {
	if err := windows.Bind(s, toSockaddr(addr)); err != nil {
		return err
	}
	return windows.Listen(s, backlog)
}

// newSocket opens an overlapped, non-inheritable TCP socket in non-blocking
// mode: overlapped operations ignore the mode, and the reads the port does
// itself after a zero-byte receive must never block.
func newSocket(family int) (Sock, error) {
	if err := wsaStartup(); err != nil {
		return NoSock, err
	}
	s, err := windows.WSASocket(int32(family), windows.SOCK_STREAM, windows.IPPROTO_TCP, nil, 0,
		windows.WSA_FLAG_OVERLAPPED|windows.WSA_FLAG_NO_HANDLE_INHERIT)
	if err != nil {
		return NoSock, err
	}
	if err := setNonblock(s); err != nil {
		windows.Closesocket(s)
		return NoSock, err
	}
	return s, nil
}

func setNonblock(s Sock) error {
	on := uint32(1)
	return winapi.Ioctlsocket(s, winapi.FIONBIO, &on)
}

// AcceptReady reports, without waiting, whether listening socket s has a
// connection to accept (one no posted AcceptEx has taken).
func AcceptReady(s Sock) bool {
	fds := []winapi.WSAPollFD{{Fd: s, Events: winapi.POLLRDNORM}}
	n, err := winapi.WSAPoll(&fds[0], 1, 0)
	return err == nil && n > 0 && fds[0].Revents&winapi.POLLRDNORM != 0
}

// CloseSock closes s; an orderly close (FIN) when the kernel has sent all.
func CloseSock(s Sock) error { return windows.Closesocket(s) }

// AbortSock closes s with a reset (SO_LINGER 0), dropping unsent data.
func AbortSock(s Sock) error {
	windows.SetsockoptLinger(s, windows.SOL_SOCKET, windows.SO_LINGER, &windows.Linger{Onoff: 1, Linger: 0})
	return windows.Closesocket(s)
}

// ShutdownWrite sends FIN after the bytes already written: a half-close.
func ShutdownWrite(s Sock) error { return windows.Shutdown(s, windows.SHUT_WR) }

// ApplyAccepted gives an accepted socket its listener's options: Windows
// does not carry TCP_NODELAY and keepalive settings over to it.
func ApplyAccepted(s Sock, o *SockOptions) error { return o.Apply(s) }
