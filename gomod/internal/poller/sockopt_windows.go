package poller

import (
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Windows' keepalive defaults: two hours of quiet, then a probe a second.
const (
	winKeepIdle  = 2 * time.Hour
	winKeepIntvl = time.Second
)

// setKeepParams sets the idle time and the interval with SIO_KEEPALIVE_VALS
// (every Windows has it, Wine too; it takes both: the one not given is
// Windows' default), and the count with TCP_KEEPCNT, which needs Windows
// 10 1703 or later (Wine lacks it: WSAENOPROTOOPT).
func setKeepParams(s Sock, idle, intvl time.Duration, count int) error {
	if idle > 0 || intvl > 0 {
		if idle <= 0 {
			idle = winKeepIdle
		}
		if intvl <= 0 {
			intvl = winKeepIntvl
		}
		ka := windows.TCPKeepalive{OnOff: 1, Time: uint32(seconds(idle) * 1000), Interval: uint32(seconds(intvl) * 1000)}
		var n uint32
		err := windows.WSAIoctl(s, windows.SIO_KEEPALIVE_VALS, (*byte)(unsafe.Pointer(&ka)), uint32(unsafe.Sizeof(ka)),
			nil, 0, &n, nil, 0)
		if err != nil {
			return err
		}
	}
	if count > 0 {
		return setIntOpt(s, windows.IPPROTO_TCP, windows.TCP_KEEPCNT, count)
	}
	return nil
}

func setIntOpt(s Sock, level, opt, v int) error { return windows.SetsockoptInt(s, level, opt, v) }

// SetSockOpt is setsockopt with value's bytes (an int option takes the four
// bytes of a C int).
func SetSockOpt(s Sock, level, opt int, value []byte) error {
	var p *byte
	if len(value) > 0 {
		p = &value[0]
	}
	return windows.Setsockopt(s, int32(level), int32(opt), p, int32(len(value)))
}

// GetSockOpt is getsockopt into n bytes; it returns the bytes filled.
func GetSockOpt(s Sock, level, opt, n int) ([]byte, error) {
	buf := make([]byte, max(n, 1))
	size := int32(n)
	if err := windows.Getsockopt(s, int32(level), int32(opt), &buf[0], &size); err != nil {
		return nil, err
	}
	return buf[:min(int(size), n)], nil
}
