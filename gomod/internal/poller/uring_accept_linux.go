package poller

// io_uring's accepts (one multishot SQE per listener) and connects.

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func (p *uring) PostAccept(r Ref, n int) error {
	st := p.fds.get(r)
	st.accepts += n
	for st.accepts > 0 && len(st.stash) > 0 {
		fd := st.stash[0]
		st.stash = st.stash[1:]
		st.accepts--
		p.later(p.accepted(st, fd), -1)
	}
	if st.accepts > 0 && !st.acceptArmed && !st.canceled {
		p.armAccept(st)
	}
	return nil
}

func (p *uring) armAccept(st *uringFD) {
	e := p.r.sqe()
	e.opcode = ioringOpAccept
	e.fd = int32(st.fd)
	e.ioprio = ioringAcceptMultishot
	e.opFlags = unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	e.userData = ud(udAccept, st)
	st.acceptArmed = true
}

func (p *uring) accepted(st *uringFD, fd Sock) Completion {
	l := uint32(unix.SizeofSockaddrAny)
	unix.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&p.peer)), uintptr(unsafe.Pointer(&l)))
	return Completion{Op: OpAccept, Token: st.token, Sock: fd, Peer: fromRaw(&p.peer)}
}

func (p *uring) acceptDone(st *uringFD, cqe *ioCQE) {
	more := cqe.flags&ioringCQEFMore != 0
	if !more {
		st.acceptArmed = false
	}
	switch {
	case cqe.res >= 0 && st.canceled:
		CloseSock(int(cqe.res))
	case cqe.res >= 0 && st.accepts > 0:
		st.accepts--
		p.emit(p.accepted(st, int(cqe.res)), -1)
	case cqe.res >= 0:
		st.stash = append(st.stash, int(cqe.res))
	case -cqe.res != int32(syscall.ECANCELED) && st.accepts > 0 && !st.canceled:
		st.accepts--
		p.emit(Completion{Op: OpAccept, Token: st.token, Sock: NoSock, Err: syscall.Errno(-cqe.res)}, -1)
	}
	if more {
		return
	}
	if st.canceled {
		p.finishAccepts(st)
	} else if st.accepts > 0 && cqe.res >= 0 {
		p.armAccept(st) // ended on its own; an error ends it until the next post
	}
}

// finishAccepts completes every posted accept of a canceled listener.
func (p *uring) finishAccepts(st *uringFD) {
	for ; st.accepts > 0; st.accepts-- {
		p.later(Completion{Op: OpAccept, Token: st.token, Sock: NoSock, Err: ErrCanceled}, -1)
	}
	for _, fd := range st.stash {
		CloseSock(fd)
	}
	st.stash = nil
}

func (p *uring) PostConnect(r Ref, addr netip.AddrPort) (bool, error) {
	st := p.fds.get(r)
	n := rawSockaddr(addr, &st.sa)
	e := p.r.sqe()
	e.opcode = ioringOpConnect
	e.fd = int32(st.fd)
	e.addr = uint64(uintptr(unsafe.Pointer(&st.sa)))
	e.off = uint64(n)
	e.userData = ud(udConnect, st)
	st.connecting = true
	return false, nil
}

// rawSockaddr writes addr as a kernel sockaddr into sa and returns its length.
func rawSockaddr(addr netip.AddrPort, sa *unix.RawSockaddrAny) uint32 {
	port := addr.Port()
	ip := addr.Addr()
	if ip.Is4() || ip.Is4In6() {
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		*in = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.Unmap().As4()}
		in.Port = port>>8 | port<<8
		return unix.SizeofSockaddrInet4
	}
	in6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(sa))
	*in6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16()}
	in6.Port = port>>8 | port<<8
	if s, ok := toSockaddr(addr).(*unix.SockaddrInet6); ok {
		in6.Scope_id = s.ZoneId
	}
	return unix.SizeofSockaddrInet6
}
