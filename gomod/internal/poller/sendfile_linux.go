package poller

import (
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendfile writes up to n bytes of f, from off, to the non-blocking
// socket s. A raw system call, as the other writes: through the runtime,
// each call (about a millisecond for the megabytes a socket buffer takes)
// had the scheduler hand the thread's P to another thread (measured:
// 1.4 futex and 3 nanosleep calls per sendfile, a quarter more CPU per
// byte). A file not in the page cache makes the worker wait for the disk
// either way: its thread is the one sending.
func sendfile(s Sock, f File, off int64, n int) (int, syscall.Errno) {
	for {
		o := off
		w, _, e := unix.RawSyscall6(unix.SYS_SENDFILE, uintptr(s), f, uintptr(unsafe.Pointer(&o)),
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
