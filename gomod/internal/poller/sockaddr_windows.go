package poller

import "golang.org/x/sys/windows"

// The Windows names of what sockaddr.go converts.
type (
	sockaddr         = windows.Sockaddr
	sockaddrInet4    = windows.SockaddrInet4
	sockaddrInet6    = windows.SockaddrInet6
	rawSockaddrAny   = windows.RawSockaddrAny
	rawSockaddrInet4 = windows.RawSockaddrInet4
	rawSockaddrInet6 = windows.RawSockaddrInet6
)

const (
	afInet  = windows.AF_INET
	afInet6 = windows.AF_INET6
)

var (
	getsockname = windows.Getsockname
	getpeername = windows.Getpeername
)
