package engine

import "golang.org/x/sys/windows"

// errSendFileRefused is how Winsock says a socket takes no TransmitFile.
var errSendFileRefused error = windows.WSAEOPNOTSUPP
