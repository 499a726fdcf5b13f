package poller

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newUDPSocket opens a non-blocking, close-on-exec UDP socket.
func newUDPSocket(v6 bool) (Sock, error) {
	family := unix.AF_INET
	if v6 {
		family = unix.AF_INET6
	}
	return unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
}

func udpOptions(s Sock, v6, reusePort, broadcast bool) error {
	var err error
	if v6 {
		err = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
	}
	if err == nil && reusePort {
		err = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	if err == nil && broadcast {
		err = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	}
	return err
}

func udpBind(s Sock, a netip.AddrPort, v6 bool) error { return unix.Bind(s, dgramSockaddr(a, v6)) }

func udpConnect(s Sock, a netip.AddrPort, v6 bool) error {
	return unix.Connect(s, dgramSockaddr(a, v6))
}

// sockV6 reports whether s is an AF_INET6 socket.
func sockV6(s Sock) bool {
	d, err := unix.GetsockoptInt(s, unix.SOL_SOCKET, unix.SO_DOMAIN)
	return err == nil && d == unix.AF_INET6
}

// mmsghdr is struct mmsghdr: recvmmsg and sendmmsg take arrays of them.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// recvFlags: MSG_TRUNC makes a datagram's length the whole datagram's,
// even when it was longer than the buffer, so a truncated one is told.
const recvFlags = unix.MSG_TRUNC

func rawRecvmmsg(fd int, msgs []mmsghdr) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)),
		recvFlags|unix.MSG_DONTWAIT, 0, 0)
	return int(n), e
}

func rawSendmmsg(fd int, msgs []mmsghdr) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)),
		unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL, 0, 0)
	return int(n), e
}

// dgramMsg is the headers of one datagram to receive or send: kept in
// Go memory that stays reachable (and so in place) until the kernel is
// done with it.
type dgramMsg struct {
	iov unix.Iovec
	rsa unix.RawSockaddrAny
}

// setRecv points h at slot buffer b and m's address room.
func (m *dgramMsg) setRecv(h *unix.Msghdr, b []byte) {
	m.iov = iovec(b)
	*h = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&m.rsa)), Namelen: unix.SizeofSockaddrAny, Iov: &m.iov, Iovlen: 1}
}

// setSend points h at datagram d (a connected socket's has no address).
func (m *dgramMsg) setSend(h *unix.Msghdr, d Datagram, v6 bool) {
	*h = unix.Msghdr{}
	if len(d.Data) > 0 {
		m.iov = iovec(d.Data)
		h.Iov, h.Iovlen = &m.iov, 1
	}
	if d.Addr.IsValid() {
		h.Name = (*byte)(unsafe.Pointer(&m.rsa))
		h.Namelen = uint32(putSockaddr(&m.rsa, d.Addr, v6))
	}
}
