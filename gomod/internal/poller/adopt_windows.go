package poller

import (
	"errors"
	"net/netip"

	"golang.org/x/sys/windows"
)

// ErrNotListening is AdoptListener's answer for a socket that is not a
// listening stream socket.
var ErrNotListening = errors.New("not a listening TCP stream socket")

// SO_ACCEPTCONN and SO_TYPE, which x/sys/windows does not name (winsock2.h).
const (
	soAcceptConn = 0x0002
	soType       = 0x1008
)

// AdoptListener readies a listening socket made elsewhere (inherited from
// a supervisor) for the engine: it must be a listening TCP socket, and
// overlapped, as Python's and Go's sockets are; it is made non-blocking.
// isUnix is always false: pyiocp has no Unix domain sockets on Windows.
func AdoptListener(s Sock) (local netip.AddrPort, name string, isUnix bool, err error) {
	if err := wsaStartup(); err != nil {
		return local, "", false, err
	}
	typ, err := windows.GetsockoptInt(s, windows.SOL_SOCKET, soType)
	if err != nil {
		return local, "", false, err
	}
	listening, err := windows.GetsockoptInt(s, windows.SOL_SOCKET, soAcceptConn)
	if err != nil {
		return local, "", false, err
	}
	if typ != windows.SOCK_STREAM || listening == 0 {
		return local, "", false, ErrNotListening
	}
	if local, err = LocalAddr(s); err != nil {
		return local, "", false, err
	}
	if !local.IsValid() {
		return local, "", false, ErrNotListening
	}
	return local, "", false, setNonblock(s)
}
