package poller

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// CanWriteNow reports whether WriteNow works on this OS.
const CanWriteNow = true

// WriteNow writes p to s at once, outside the port, with one send that
// never blocks (MSG_DONTWAIT, whatever the socket's mode) and raises no
// SIGPIPE: from any thread, while no send of s is posted. n is what the
// socket took; 0 with a nil error when its buffer is full.
func WriteNow(s Sock, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, nil
		default:
			return 0, e
		}
	}
}
