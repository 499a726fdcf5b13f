package engine

import (
	"errors"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// ListenSocket serves a listening socket made elsewhere: one inherited
// from systemd socket activation (LISTEN_FDS) or from a supervisor
// process, already bound and listening (a TCP socket, or on Linux a Unix
// domain one; on Windows an overlapped socket, as Python's and Go's are).
// The manager owns s from the call on: it closes it with the listener, and
// at once when the call fails. Of the options, WithBacklog and
// WithReusePort do not apply (the socket's own stand); the socket options
// are set on it, so that the connections it accepts have them; a Unix
// domain listener takes no socket options nor WithFirstData, and leaves
// its socket file in place when it closes (whoever made it owns it).
func (m *Manager) ListenSocket(s uintptr, opts ...ListenOption) (*Listener, error) {
	fd := poller.Sock(s)
	fail := func(err error) (*Listener, error) {
		poller.CloseSock(fd)
		return nil, err
	}
	lo, err := newListenOptions(opts)
	if err != nil {
		return fail(err)
	}
	local, name, isUnix, err := poller.AdoptListener(fd)
	if errors.Is(err, poller.ErrNotListening) {
		return fail(&OptionError{"sock", s, poller.ErrNotListening.Error()})
	}
	if err != nil {
		return fail(err)
	}
	if isUnix && (lo.sock != (SockOptions{}) || lo.firstData) {
		return fail(&OptionError{"options", "unix", "first_data and socket options are TCP's"})
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closing.Load() {
		return fail(ErrManagerClosed)
	}
	if isUnix {
		return m.addListener(&Listener{fd: fd, unix: &unixListener{name: name}}, lo) // closes fd if it fails
	}
	if err := lo.sock.Apply(fd); err != nil {
		return fail(err)
	}
	if lo.firstData {
		if err := poller.DeferAccept(fd, m.firstDataTimeout()); err != nil {
			return fail(err)
		}
	}
	return m.addListener(&Listener{fd: fd, addr: local}, lo)
}

// CloseSocket closes a socket ListenSocket would have taken, for a caller
// that owns one it could not hand over.
func CloseSocket(s uintptr) { poller.CloseSock(poller.Sock(s)) }
