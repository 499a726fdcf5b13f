package poller

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// ErrNotListening is AdoptListener's answer for a socket that is not a
// listening stream socket.
var ErrNotListening = errors.New("not a listening TCP or Unix domain stream socket")

// AdoptListener readies a listening socket made elsewhere (inherited from
// systemd socket activation or a supervisor) for the engine: it must be a
// listening stream socket; it is made non-blocking and close-on-exec.
// Its address, or its Unix domain name (isUnix), says what it listens on.
func AdoptListener(s Sock) (local netip.AddrPort, name string, isUnix bool, err error) {
	typ, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return local, "", false, err
	}
	listening, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return local, "", false, err
	}
	if typ != unix.SOCK_STREAM || listening == 0 {
		return local, "", false, ErrNotListening
	}
	sa, err := unix.Getsockname(s)
	if err != nil {
		return local, "", false, err
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		local = fromSockaddr(sa)
	case *unix.SockaddrInet6:
		local = fromSockaddr(sa)
	case *unix.SockaddrUnix:
		name, isUnix = unixName(sa, nil), true
	default:
		return local, "", false, ErrNotListening
	}
	if err := unix.SetNonblock(s, true); err != nil {
		return local, "", false, err
	}
	unix.CloseOnExec(s)
	return local, name, isUnix, nil
}
