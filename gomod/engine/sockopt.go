package engine

import (
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// SockOptions are a TCP socket's options: TCP_NODELAY (on unless Nagle),
// keepalive probes, and the kernel's buffer sizes. The zero value is what
// the engine always did: TCP_NODELAY on, the rest the OS's defaults.
type SockOptions = poller.SockOptions

// WithSockOptions sets the listening socket's options; every connection it
// accepts has them too.
func WithSockOptions(so SockOptions) ListenOption {
	return func(o *listenOptions) error {
		if err := checkSockOptions(&so); err != nil {
			return err
		}
		o.sock = so
		return nil
	}
}

func checkSockOptions(so *SockOptions) error {
	switch {
	case so.KeepIdle < 0 || so.KeepIdle > maxKeepTime:
		return &OptionError{"keepalive idle", so.KeepIdle.Seconds(), "must be 0 to 32767 seconds"}
	case so.KeepIntvl < 0 || so.KeepIntvl > maxKeepTime:
		return &OptionError{"keepalive interval", so.KeepIntvl.Seconds(), "must be 0 to 32767 seconds"}
	case so.KeepCount < 0 || so.KeepCount > 127:
		return &OptionError{"keepalive count", so.KeepCount, "must be 0 to 127"}
	case so.RecvBuf < 0 || so.RecvBuf > 1<<30:
		return &OptionError{"rcvbuf", so.RecvBuf, "must be 0 to 1 GiB"}
	case so.SendBuf < 0 || so.SendBuf > 1<<30:
		return &OptionError{"sndbuf", so.SendBuf, "must be 0 to 1 GiB"}
	}
	return nil
}

// maxKeepTime is the longest keepalive idle or interval Linux takes.
const maxKeepTime = 32767 * time.Second

// SetNoDelay turns TCP_NODELAY on or off. Safe from any thread;
// ErrClosed once the connection is closed.
func (c *Conn) SetNoDelay(on bool) error {
	return c.withSock(func(s poller.Sock) error { return poller.SetNoDelay(s, on) })
}

// SetKeepAlive turns keepalive probes on (with idle, interval and count;
// 0 keeps the OS's value) or off.
func (c *Conn) SetKeepAlive(on bool, idle, interval time.Duration, count int) error {
	so := SockOptions{KeepAlive: on, KeepIdle: idle, KeepIntvl: interval, KeepCount: count}
	if err := checkSockOptions(&so); err != nil {
		return err
	}
	return c.withSock(func(s poller.Sock) error { return poller.SetKeepAlive(s, on, idle, interval, count) })
}

// SetSockOpt is setsockopt on the connection's socket, with the OS's
// level and option numbers and the option's bytes.
func (c *Conn) SetSockOpt(level, opt int, value []byte) error {
	return c.withSock(func(s poller.Sock) error { return poller.SetSockOpt(s, level, opt, value) })
}

// GetSockOpt is getsockopt on the connection's socket into n bytes.
func (c *Conn) GetSockOpt(level, opt, n int) ([]byte, error) {
	if n < 1 || n > 1024 {
		return nil, &OptionError{"buflen", n, "must be 1 to 1024"}
	}
	var out []byte
	err := c.withSock(func(s poller.Sock) (err error) {
		out, err = poller.GetSockOpt(s, level, opt, n)
		return err
	})
	return out, err
}

// withSock runs f on the connection's socket unless it is closed. The
// read lock on c.sockMu, not c.mu, is held across f's system call: it keeps
// finalize from closing the socket (and the OS from giving its number to
// another) meanwhile, and makes no Send or flush wait for it.
func (c *Conn) withSock(f func(poller.Sock) error) error {
	c.sockMu.RLock()
	defer c.sockMu.RUnlock()
	c.mu.Lock()
	freed := c.freed
	c.mu.Unlock()
	if freed {
		return ErrClosed
	}
	return f(c.fd)
}

// SetIdleTimeout gives the connection an idle timeout of its own (0: none),
// or the manager's again when d is negative. Safe from any thread;
// ErrClosed once the connection is closing.
func (c *Conn) SetIdleTimeout(d time.Duration) error {
	c.mu.Lock()
	closed := c.req != closeNone || c.freed
	c.mu.Unlock()
	if closed || !c.w.enqueue(request{kind: reqIdleTimeout, c: c, t: int64(d)}) {
		return ErrClosed
	}
	return nil
}

// setIdleTimeout applies SetIdleTimeout on the worker.
func (w *worker) setIdleTimeout(c *Conn, d time.Duration) {
	if c.state >= stateCanceling {
		return
	}
	c.ownIdle = d >= 0
	c.idleTimeout = d
	if c.state != stateConnecting {
		w.schedule(c)
	}
}

// idleTimeoutOf is the connection's idle timeout: its own, or the
// manager's.
func (w *worker) idleTimeoutOf(c *Conn) time.Duration {
	if c.ownIdle {
		return c.idleTimeout
	}
	return w.m.opts.idleTimeout
}
