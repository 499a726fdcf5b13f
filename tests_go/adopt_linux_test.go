package engine_test

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// rawSocket opens a TCP socket bound to loopback (port 0), listening when
// asked, as another program would hand it over: blocking, no option set.
func rawSocket(t *testing.T, listening bool) (uintptr, netip.AddrPort) {
	t.Helper()
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(s, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if listening {
		if err := unix.Listen(s, 64); err != nil {
			t.Fatal(err)
		}
	}
	sa, err := unix.Getsockname(s)
	if err != nil {
		t.Fatal(err)
	}
	in := sa.(*unix.SockaddrInet4)
	return uintptr(s), netip.AddrPortFrom(netip.AddrFrom4(in.Addr), uint16(in.Port))
}

// isOpen reports whether descriptor s is open.
func isOpen(s uintptr) bool {
	_, err := unix.FcntlInt(s, unix.F_GETFD, 0)
	return err == nil
}

// TestListenSocketUnix: a Unix domain listening socket made elsewhere is
// served; its socket file stays when the listener closes (its maker's).
func TestListenSocketUnix(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		path := t.TempDir() + "/s"
		s, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(s, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(s, 16); err != nil {
			t.Fatal(err)
		}
		r := newEchoRecorder()
		m := startManager(t, r, backend)
		l, err := m.ListenSocket(uintptr(s))
		if err != nil {
			t.Fatal(err)
		}
		if l.Path() != path {
			t.Errorf("Path %q, want %q", l.Path(), path)
		}
		unixEcho(t, path)
		l.Close()
		<-l.Done()
		if err := unix.Access(path, unix.F_OK); err != nil {
			t.Errorf("the socket file was removed: %v", err)
		}
	})
}
