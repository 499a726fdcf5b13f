package poller

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setKeepParams sets the keepalive idle time, interval and count where
// not 0.
func setKeepParams(s Sock, idle, intvl time.Duration, count int) error {
	var err error
	if idle > 0 {
		err = setIntOpt(s, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, seconds(idle))
	}
	if err == nil && intvl > 0 {
		err = setIntOpt(s, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, seconds(intvl))
	}
	if err == nil && count > 0 {
		err = setIntOpt(s, unix.IPPROTO_TCP, unix.TCP_KEEPCNT, count)
	}
	return err
}

func setIntOpt(s Sock, level, opt, v int) error { return unix.SetsockoptInt(s, level, opt, v) }

// SetSockOpt is setsockopt(2) with value's bytes (an int option takes the
// four bytes of a C int).
func SetSockOpt(s Sock, level, opt int, value []byte) error {
	var p unsafe.Pointer
	if len(value) > 0 {
		p = unsafe.Pointer(&value[0])
	}
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(s), uintptr(level), uintptr(opt), uintptr(p),
		uintptr(len(value)), 0)
	if e != 0 {
		return e
	}
	return nil
}

// GetSockOpt is getsockopt(2) into n bytes; it returns the bytes the
// kernel filled.
func GetSockOpt(s Sock, level, opt, n int) ([]byte, error) {
	buf := make([]byte, max(n, 1))
	size := uint32(n)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
	if e != 0 {
		return nil, e
	}
	return buf[:min(int(size), n)], nil
}
