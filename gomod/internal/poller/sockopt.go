package poller

import (
	"syscall"
	"time"
)

// SockOptions are the options of a TCP socket the engine makes: set on a
// listening socket and again on every socket it accepts (which not every
// OS makes inherit them all), and on a connecting socket.
type SockOptions struct {
	Nagle     bool          // Nagle's algorithm on (TCP_NODELAY off); off by default
	KeepAlive bool          // keepalive probes, with the three below (0: the OS's value)
	KeepIdle  time.Duration // quiet time before the first probe (whole seconds)
	KeepIntvl time.Duration // time between probes (whole seconds)
	KeepCount int           // unanswered probes before the connection is reset
	RecvBuf   int           // SO_RCVBUF in bytes, 0: the OS's
	SendBuf   int           // SO_SNDBUF in bytes, 0: the OS's
}

// The option numbers are the syscall package's, the same on Linux and
// Windows but for the keepalive parameters (sockopt_<os>.go).

// Apply sets o on s; only what differs from a new socket's defaults is set,
// but for TCP_NODELAY, set either way.
func (o *SockOptions) Apply(s Sock) error {
	err := SetNoDelay(s, !o.Nagle)
	if err == nil && o.KeepAlive {
		err = SetKeepAlive(s, true, o.KeepIdle, o.KeepIntvl, o.KeepCount)
	}
	if err == nil && o.RecvBuf > 0 {
		err = setIntOpt(s, syscall.SOL_SOCKET, syscall.SO_RCVBUF, o.RecvBuf)
	}
	if err == nil && o.SendBuf > 0 {
		err = setIntOpt(s, syscall.SOL_SOCKET, syscall.SO_SNDBUF, o.SendBuf)
	}
	return err
}

// SetNoDelay sets TCP_NODELAY on s.
func SetNoDelay(s Sock, on bool) error {
	return setIntOpt(s, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, boolInt(on))
}

// SetKeepAlive turns keepalive probes on or off; when on, idle, intvl
// (rounded up to whole seconds) and count are set where not 0
// (sockopt_<os>.go: setKeepParams).
func SetKeepAlive(s Sock, on bool, idle, intvl time.Duration, count int) error {
	err := setIntOpt(s, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, boolInt(on))
	if err == nil && on {
		err = setKeepParams(s, idle, intvl, count)
	}
	return err
}

func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
