package engine

import (
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// Unix domain sockets: the same connections as TCP's (Handler, sends,
// backpressure, timeouts, limits, framing, TLS), named by paths instead
// of addresses. A name is a filesystem path, or "\x00" and a name in
// Linux's abstract namespace (no file). Linux only: on Windows every call
// fails with WSAEAFNOSUPPORT (see internal/poller/unix_windows.go).

// UnixSupported reports whether ListenUnix and ConnectUnix work here.
const UnixSupported = poller.UnixSupported

// unixNames are a Unix domain connection's two ends ("" when unnamed, as a
// connecting socket is).
type unixNames struct {
	local, peer string
}

// unixListener is what a Unix domain listener has besides a TCP one's.
type unixListener struct {
	name   string
	file   *poller.UnixFile // the socket file to remove; nil: abstract
	remove sync.Once
}

// ListenUnix listens on the Unix domain socket name, with the socket
// file's permission bits set to mode when not 0. A socket file whose
// listener is gone is replaced; one something listens on is EADDRINUSE.
// The file is removed when the listener closes (Close, or the manager's).
// Of the options, WithBacklog, WithAccepts, WithFraming and WithTLS apply;
// socket options, WithReusePort and WithFirstData are TCP's (an
// OptionError).
func (m *Manager) ListenUnix(name string, mode os.FileMode, opts ...ListenOption) (*Listener, error) {
	lo, err := newListenOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := poller.CheckUnixName(name); err != nil {
		return nil, &OptionError{"path", name, err.Error()}
	}
	switch {
	case mode&^os.ModePerm != 0:
		return nil, &OptionError{"mode", mode, "must be permission bits (0 to 0o777)"}
	case lo.reusePort || lo.sock != (SockOptions{}) || lo.firstData || lo.udp:
		return nil, &OptionError{"options", "unix", "reuse_port, first_data, socket and UDP options do not apply"}
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closing.Load() {
		return nil, ErrManagerClosed
	}
	fd, file, err := poller.ListenUnix(name, lo.backlog, mode)
	if err != nil {
		return nil, err
	}
	return m.addListener(&Listener{fd: fd, unix: &unixListener{name: name, file: file}}, lo)
}

// Path is a Unix domain listener's name ("" for TCP).
func (l *Listener) Path() string {
	if l.unix == nil {
		return ""
	}
	return l.unix.name
}

// removeFile removes a Unix domain listener's socket file, once: at Close,
// so that no new client finds it, or when its worker closes the socket.
func (l *Listener) removeFile() {
	if u := l.unix; u != nil && u.file != nil {
		u.remove.Do(u.file.Remove)
	}
}

// ConnectUnix connects to the Unix domain listener name and returns the
// connection at once; EventConnect follows, or EventClose with the error
// (ENOENT, ECONNREFUSED; EAGAIN when the listener's backlog is full: a
// Unix domain connect does not wait). timeout is Connect's (0: none); as
// the connect is done or refused at once, it seldom matters.
func (m *Manager) ConnectUnix(name string, timeout time.Duration) (*Conn, error) {
	if err := poller.CheckUnixName(name); err != nil {
		return nil, &OptionError{"path", name, err.Error()}
	}
	if timeout < 0 {
		return nil, &OptionError{"timeout", timeout.Seconds(), "must not be negative"}
	}
	return m.outbound(timeout, nil, func() (*Conn, error) {
		fd, err := poller.NewUnixSocket()
		if err != nil {
			return nil, err
		}
		c := m.newConn(fd, netip.AddrPort{}, true)
		c.unix = &unixNames{peer: name}
		return c, nil
	})
}

// IsUnix reports whether c is a Unix domain connection.
func (c *Conn) IsUnix() bool { return c.unix != nil }

// UnixNames are a Unix domain connection's own name and its peer's (""
// when unnamed, as a connecting socket's own is); both "" for TCP.
func (c *Conn) UnixNames() (local, peer string) {
	if c.unix == nil {
		return "", ""
	}
	return c.unix.local, c.unix.peer
}

// connectUnix connects c, registered with its worker's port, at once. Its
// own name stays "": the socket is not bound, so it is unnamed (the names
// are fixed before the connection is shared: no lock reads them).
func (w *worker) connectUnix(c *Conn) error {
	if err := poller.ConnectUnix(c.fd, c.unix.peer); err != nil {
		return err
	}
	w.connected(c)
	return nil
}
