package poller

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// Unix domain sockets on Windows: AF_UNIX exists there since Windows 10
// 1803, but Wine, which the iocp backend is tested under, has none
// (socket() fails with WSAEAFNOSUPPORT), so it is not offered: every call
// fails with that error.

// UnixSupported reports whether this OS's backends take Unix domain sockets.
const UnixSupported = false

// MaxUnixName is the longest name sun_path holds.
const MaxUnixName = 108

// UnixFile is never made on Windows.
type UnixFile struct{}

func ListenUnix(string, int, os.FileMode) (Sock, *UnixFile, error) {
	return NoSock, nil, windows.WSAEAFNOSUPPORT
}

func (*UnixFile) Remove() {}

func NewUnixSocket() (Sock, error)   { return NoSock, windows.WSAEAFNOSUPPORT }
func ConnectUnix(Sock, string) error { return windows.WSAEAFNOSUPPORT }
func UnixPeerName(Sock) string       { return "" }
func CheckUnixName(name string) error {
	if name == "" {
		return errors.New("must not be empty")
	}
	return nil
}
