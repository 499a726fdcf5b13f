package poller

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// Sock is an OS socket: a file descriptor on Linux.
type Sock = int

// NoSock is never a valid socket.
const NoSock Sock = -1

// newSocket opens a non-blocking, close-on-exec TCP socket.
func newSocket(family int) (Sock, error) {
	return unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
}

// listenOptions: SO_REUSEADDR, so that a restarted server binds while its
// old connections are in TIME_WAIT, and SO_REUSEPORT when asked.
func listenOptions(s Sock, reusePort bool) error {
	err := unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err == nil && reusePort {
		err = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	return err
}

// connectOptions: a Linux socket connects as it is.
func connectOptions(Sock, netip.AddrPort) error { return nil }

func bindListen(s Sock, addr netip.AddrPort, backlog int) error {
	if err := unix.Bind(s, toSockaddr(addr)); err != nil {
		return err
	}
	return unix.Listen(s, backlog)
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

// ApplyAccepted gives an accepted socket its listener's options: nothing
// to do on Linux, where an accepted socket is a copy of its listener,
// options included.
func ApplyAccepted(Sock, *SockOptions) error { return nil }
