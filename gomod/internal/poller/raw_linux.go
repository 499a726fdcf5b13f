package poller

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The calls below never block (the sockets are non-blocking), so they use
// RawSyscall: the runtime-aware Syscall, called on a thread that came from C,
// makes the scheduler hand its P around on every call (measured: 0.21
// context switches per message). Only the call that blocks, epoll_wait with
// a timeout, goes through the runtime.

func rawRead(fd int, p []byte) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), e
}

func rawWritev(fd int, iov []unix.Iovec) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(n), e
}

func rawAccept4(fd int, rsa *unix.RawSockaddrAny) (int, syscall.Errno) {
	l := uint32(unix.SizeofSockaddrAny)
	n, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(rsa)),
		uintptr(unsafe.Pointer(&l)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	return int(n), e
}

func rawEpollPoll(epfd int, events []unix.EpollEvent) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_WAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])),
		uintptr(len(events)), 0, 0, 0)
	return int(n), e
}

func rawSockError(fd int) syscall.Errno {
	var v int32
	l := uint32(4)
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR,
		uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return e
	}
	return syscall.Errno(v)
}

func rawWriteEventfd(fd int) {
	one := uint64(1)
	unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&one)), 8)
}

func rawReadEventfd(fd int) {
	var v uint64
	unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&v)), 8)
}

// iovec describes b (not empty) for writev and sendmsg.
func iovec(b []byte) unix.Iovec {
	v := unix.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return v
}
