package poller

import "golang.org/x/sys/unix"

// The Linux names of what sockaddr.go converts.
type (
	sockaddr         = unix.Sockaddr
	sockaddrInet4    = unix.SockaddrInet4
	sockaddrInet6    = unix.SockaddrInet6
	rawSockaddrAny   = unix.RawSockaddrAny
	rawSockaddrInet4 = unix.RawSockaddrInet4
	rawSockaddrInet6 = unix.RawSockaddrInet6
)

const (
	afInet  = unix.AF_INET
	afInet6 = unix.AF_INET6
)

var (
	getsockname = unix.Getsockname
	getpeername = unix.Getpeername
)
