package poller

import (
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendfile writes up to n bytes of f, from off, to the non-blocking
// socket s. Reading the file may wait for the disk, so the call goes
// through the runtime (the thread's P is handed off if it blocks); it
// moves up to a socket buffer at a time, which makes that cost small.
func sendfile(s Sock, f File, off int64, n int) (int, syscall.Errno) {
	for {
		o := off
		w, _, e := unix.Syscall6(unix.SYS_SENDFILE, uintptr(s), f, uintptr(unsafe.Pointer(&o)),
			uintptr(min(n, maxSendFile)), 0, 0)
		if e == syscall.EINTR {
			continue
		}
		return int(w), e
	}
}

// SendFileRefused reports whether err, from PostSendFile, means the
// kernel cannot send this file to this socket without a copy (a file
// system without splice support, say): the caller copies the bytes
// instead.
func SendFileRefused(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EOPNOTSUPP)
}

// DupFile duplicates the descriptor f (close-on-exec): the caller owns the
// copy and closes it.
func DupFile(f File) (File, error) {
	nfd, err := unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	return File(nfd), nil
}
