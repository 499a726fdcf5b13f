package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// listenUnix opens a Unix domain listener on m, checking the error.
func listenUnix(t *testing.T, m *engine.Manager, name string, mode os.FileMode,
	opts ...engine.ListenOption) *engine.Listener {
	t.Helper()
	l, err := m.ListenUnix(name, mode, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestUnixEcho: a stock client and the engine's own over a Unix domain
// socket: every byte back in order, the names on both ends, the file's
// mode, and the file gone once the listener closes.
func TestUnixEcho(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		path := filepath.Join(t.TempDir(), "echo.sock")
		srv := newEchoRecorder()
		m := newManager(t, srv, backend)
		t.Cleanup(func() { closeManager(t, m) })
		l := listenUnix(t, m, path, 0o600)
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Lstat(path); err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
			t.Fatalf("socket file: %v %v, want a socket with mode 0600", st, err)
		}
		if l.Path() != path || l.Addr().IsValid() || !strings.Contains(l.String(), "echo.sock") {
			t.Errorf("listener: path %q addr %v string %q", l.Path(), l.Addr(), l)
		}

		cli, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		if err := roundTrip(cli, pattern(1<<20)); err != nil {
			t.Fatal(err)
		}
		sc := srv.nextConn(t)
		if local, peer := sc.UnixNames(); !sc.IsUnix() || local != path || peer != "" {
			t.Errorf("accepted: unix %v, names %q %q; want the listener's path and an unnamed peer",
				sc.IsUnix(), local, peer)
		}

		r := newRecorder()
		cm := startManager(t, r, backend)
		c, err := cm.ConnectUnix(path, waitBound)
		if err != nil {
			t.Fatal(err)
		}
		payload := pattern(300 << 10)
		c.Send(payload)
		eventually(t, "the echo", func() bool { return r.receivedLen(c.ID()) >= len(payload) })
		if !bytes.Equal(r.received(c.ID()), payload) {
			t.Fatal("the echo differs")
		}
		if local, peer := c.UnixNames(); local != "" || peer != path {
			t.Errorf("outbound names %q %q, want an unnamed socket and the path", local, peer)
		}
		c.Close()
		wantNil(t, r.waitClosed(t, c.ID()))

		l.Close()
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after Close the socket file is still there: %v", err)
		}
		<-l.Done()
	})
}

// TestUnixSocketFile: a socket file nothing listens on is replaced; a live
// one, or a file that is not a socket, is EADDRINUSE and left alone; a
// listener removes its own file only, not one put there since.
func TestUnixSocketFile(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		dir := t.TempDir()
		m := startManager(t, echoHandler{}, backend)

		stalePath := filepath.Join(dir, "stale.sock")
		old, err := net.ListenUnix("unix", &net.UnixAddr{Name: stalePath, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		old.SetUnlinkOnClose(false)
		old.Close() // the file stays, with nothing listening on it
		l := listenUnix(t, m, stalePath, 0)
		unixEcho(t, stalePath)

		if _, err := m.ListenUnix(stalePath, 0); !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("a second listener on a live path: %v, want EADDRINUSE", describe(err))
		}
		unixEcho(t, stalePath) // the first is untouched

		plain := filepath.Join(dir, "plain")
		os.WriteFile(plain, []byte("keep me"), 0o600)
		if _, err := m.ListenUnix(plain, 0); !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("a listener over a regular file: %v, want EADDRINUSE", describe(err))
		}
		if b, err := os.ReadFile(plain); err != nil || string(b) != "keep me" {
			t.Errorf("the regular file after: %q %v", b, err)
		}

		// Another process's listener, put there after ours was unlinked
		// by hand, survives our Close.
		os.Remove(stalePath)
		theirs, err := net.Listen("unix", stalePath)
		if err != nil {
			t.Fatal(err)
		}
		defer theirs.Close()
		l.Close()
		<-l.Done()
		if _, err := os.Lstat(stalePath); err != nil {
			t.Errorf("our Close removed a file that was not ours: %v", err)
		}
		if n := len(m.Listeners()); n != 0 {
			t.Errorf("%d listeners left", n)
		}
	})
}

// unixEcho checks that something echoes on the Unix domain socket path.
func unixEcho(t *testing.T, path string) {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, []byte("ping")); err != nil {
		t.Fatal(err)
	}
}

// TestUnixAbstract: a name in Linux's abstract namespace has no file; both
// ends spell it with its leading NUL.
func TestUnixAbstract(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		name := fmt.Sprintf("\x00pyiocp-test-%d-%s", os.Getpid(), backend)
		srv := newEchoRecorder()
		m := newManager(t, srv, backend)
		t.Cleanup(func() { closeManager(t, m) })
		l := listenUnix(t, m, name, 0)
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		unixEcho(t, "@"+name[1:]) // Go's net spells it with '@'
		if local, _ := srv.nextConn(t).UnixNames(); local != name {
			t.Errorf("accepted local name %q, want %q", local, name)
		}
		r := newRecorder()
		c, err := startManager(t, r, backend).ConnectUnix(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		c.Send([]byte("abstract"))
		eventually(t, "the echo", func() bool { return r.receivedLen(c.ID()) == 8 })
		l.Close()
		<-l.Done()
		if _, err := net.Dial("unix", "@"+name[1:]); err == nil {
			t.Error("the abstract name still listens after Close")
		}
	})
}

// TestUnixBadInput: bad names and options are OptionErrors at the call; a
// connect to nothing ends in EventClose with the OS's reason.
func TestUnixBadInput(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		m := startManager(t, r, backend)
		long := "/tmp/" + strings.Repeat("x", 110)
		for _, name := range []string{"", "\x00", "a\x00b", long, "\x00" + strings.Repeat("y", 108)} {
			var oe *engine.OptionError
			if _, err := m.ListenUnix(name, 0); !errors.As(err, &oe) {
				t.Errorf("ListenUnix(%q): %v, want an OptionError", name, describe(err))
			}
			if _, err := m.ConnectUnix(name, 0); !errors.As(err, &oe) {
				t.Errorf("ConnectUnix(%q): %v, want an OptionError", name, describe(err))
			}
		}
		dir := t.TempDir()
		var oe *engine.OptionError
		if _, err := m.ListenUnix(filepath.Join(dir, "m.sock"), 0o1777); !errors.As(err, &oe) {
			t.Errorf("mode with sticky bit: %v, want an OptionError", describe(err))
		}
		if _, err := m.ListenUnix(filepath.Join(dir, "r.sock"), 0, engine.WithReusePort(true)); !errors.As(err, &oe) {
			t.Errorf("reuse port: %v, want an OptionError", describe(err))
		}
		if _, err := m.ListenUnix(filepath.Join(dir, "none", "x.sock"), 0); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("in a missing directory: %v, want ENOENT", describe(err))
		}
		if n := len(m.Listeners()); n != 0 {
			t.Errorf("%d listeners after the refused ones", n)
		}

		c, err := m.ConnectUnix(filepath.Join(dir, "missing.sock"), 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.waitClosed(t, c.ID()); !errors.Is(err, syscall.ENOENT) {
			t.Errorf("connect to a missing path: %v, want ENOENT", describe(err))
		}
		stalePath := filepath.Join(dir, "stale.sock")
		old, err := net.ListenUnix("unix", &net.UnixAddr{Name: stalePath, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		old.SetUnlinkOnClose(false)
		old.Close()
		c, err = m.ConnectUnix(stalePath, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.waitClosed(t, c.ID()); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("connect to a stale socket: %v, want ECONNREFUSED", describe(err))
		}
		if s := m.Stats(); s.Connections != 0 {
			t.Errorf("connections after the failed connects: %d", s.Connections)
		}
	})
}

// TestUnixManagerCloseRemovesFile: a listener the manager's close ends
// removes its file too.
func TestUnixManagerCloseRemovesFile(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		path := filepath.Join(t.TempDir(), "m.sock")
		m := newManager(t, echoHandler{}, backend)
		listenUnix(t, m, path, 0)
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		unixEcho(t, path)
		closeManager(t, m)
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after the manager's close the socket file is still there: %v", err)
		}
	})
}
