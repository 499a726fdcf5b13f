package winapi

import "golang.org/x/sys/windows"

// OverlappedEntry is OVERLAPPED_ENTRY: one completion packet harvested by
// GetQueuedCompletionStatusEx.
type OverlappedEntry struct {
	CompletionKey            uintptr
	Overlapped               *windows.Overlapped
	Internal                 uintptr
	NumberOfBytesTransferred uint32
}

// FIONBIO is the ioctlsocket command that sets a socket's non-blocking mode.
const FIONBIO = 0x8004667e

// WSAPollFD is WSAPOLLFD: one socket for WSAPoll.
type WSAPollFD struct {
	Fd      windows.Handle
	Events  int16
	Revents int16
}

// POLLRDNORM is WSAPoll's "normal data may be read"; on a listening socket,
// "a connection may be accepted".
const POLLRDNORM = 0x0100

//sys	GetQueuedCompletionStatusEx(port windows.Handle, entries *OverlappedEntry, count uint32, removed *uint32, timeout uint32, alertable bool) (err error) = kernel32.GetQueuedCompletionStatusEx
//sys	Ioctlsocket(s windows.Handle, cmd uint32, arg *uint32) (err error) [failretval!=0] = ws2_32.ioctlsocket
//sys	WSAPoll(fds *WSAPollFD, nfds uint32, timeout int32) (n int32, err error) [failretval==-1] = ws2_32.WSAPoll
//sys	Accept(s windows.Handle, rsa *windows.RawSockaddrAny, addrlen *int32) (ns windows.Handle, err error) [failretval==windows.InvalidHandle] = ws2_32.accept
