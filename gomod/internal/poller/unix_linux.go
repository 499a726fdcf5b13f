package poller

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Unix domain sockets (SOCK_STREAM). A name is a filesystem path, or
// "\x00" and a name in Linux's abstract namespace (no file); "" is an
// unnamed socket. Nothing here touches TCP options: they do not apply.

// UnixSupported reports whether this OS's backends take Unix domain sockets.
const UnixSupported = true

// MaxUnixName is the longest name sun_path holds: a path's bytes plus its
// NUL, or an abstract name's with its leading NUL.
const MaxUnixName = len(unix.RawSockaddrUnix{}.Path)

// UnixFile identifies the socket file a listener made, so that it removes
// that file only, not one another process put there since.
type UnixFile struct {
	path     string
	dev, ino uint64
}

// ListenUnix opens a listening socket bound to name, with the file's
// permission bits set to mode when mode is not 0. A socket file left by a
// listener that is gone (a connect to it is refused) is replaced; a live
// one is EADDRINUSE, as is any other file there. The UnixFile says what
// to remove once the listener closes (nil for an abstract name).
func ListenUnix(name string, backlog int, mode os.FileMode) (Sock, *UnixFile, error) {
	s, err := NewUnixSocket()
	if err != nil {
		return NoSock, nil, err
	}
	err = unix.Bind(s, unixSockaddr(name))
	if err == unix.EADDRINUSE && !abstract(name) && stale(name) {
		// Only a socket file is removed, and only one nobody listens on.
		os.Remove(name)
		err = unix.Bind(s, unixSockaddr(name))
	}
	var file *UnixFile
	if err == nil && !abstract(name) {
		file, err = statSocket(name)
		if err == nil && mode != 0 {
			err = os.Chmod(name, mode)
		}
		if err != nil {
			os.Remove(name) // ours: made by the bind above
		}
	}
	if err == nil {
		err = unix.Listen(s, backlog)
		if err != nil && file != nil {
			file.Remove()
		}
	}
	if err != nil {
		unix.Close(s)
		return NoSock, nil, err
	}
	return s, file, nil
}

// Remove deletes the socket file if it is still the one the listener made.
func (f *UnixFile) Remove() {
	if g, err := statSocket(f.path); err == nil && *g == *f {
		os.Remove(f.path)
	}
}

func statSocket(path string) (*UnixFile, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, err
	}
	return &UnixFile{path: path, dev: st.Dev, ino: st.Ino}, nil
}

// stale reports whether path is a socket file nothing listens on.
func stale(path string) bool {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return false
	}
	s, err := NewUnixSocket()
	if err != nil {
		return false
	}
	defer unix.Close(s)
	// A refused connect means nothing listens; EAGAIN means a listener
	// whose backlog is full: alive.
	return ConnectUnix(s, path) == unix.ECONNREFUSED
}

// NewUnixSocket opens a non-blocking, close-on-exec Unix domain socket.
func NewUnixSocket() (Sock, error) {
	return unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

// ConnectUnix connects s to the listener named name. A Unix domain
// connect does not wait for the other side: it is done, or refused
// (ENOENT, ECONNREFUSED, EAGAIN when the listener's backlog is full), at
// once, so every backend does it here, on the caller's thread.
func ConnectUnix(s Sock, name string) error {
	return unix.Connect(s, unixSockaddr(name))
}

// UnixPeerName is the name of the socket s is connected to.
func UnixPeerName(s Sock) string { return unixName(unix.Getpeername(s)) }

func unixName(sa unix.Sockaddr, err error) string {
	u, ok := sa.(*unix.SockaddrUnix)
	if err != nil || !ok {
		return ""
	}
	// x/sys spells an abstract name with a leading '@', and an unnamed
	// socket (all NULs) "@"; the engine's spelling is the kernel's (and
	// Python's): a leading NUL, and "" for unnamed.
	if u.Name == "@" {
		return ""
	}
	if strings.HasPrefix(u.Name, "@") {
		return "\x00" + u.Name[1:]
	}
	return u.Name
}

func abstract(name string) bool { return strings.HasPrefix(name, "\x00") }

// unixSockaddr is name as x/sys takes it: a path that starts with '@'
// would be read as abstract, so it is made explicitly relative.
func unixSockaddr(name string) *unix.SockaddrUnix {
	if strings.HasPrefix(name, "@") {
		name = "./" + name
	}
	return &unix.SockaddrUnix{Name: name}
}

// CheckUnixName says what is wrong with name, or nil.
func CheckUnixName(name string) error {
	switch {
	case name == "" || name == "\x00":
		return errors.New("must not be empty")
	case strings.ContainsRune(strings.TrimPrefix(name, "\x00"), 0):
		return errors.New("must not hold a NUL byte (but an abstract name's first)")
	case abstract(name) && len(name) > MaxUnixName:
		return errors.New("is too long: an abstract name takes at most 107 bytes after its NUL")
	case !abstract(name) && len(unixSockaddr(name).Name) >= MaxUnixName:
		return errors.New("is too long: a socket path takes at most 107 bytes")
	}
	return nil
}
