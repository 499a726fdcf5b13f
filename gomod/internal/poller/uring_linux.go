package poller

import (
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uring is the io_uring backend: the kernel's own completion queue, the
// IOCP model on Linux. One io_uring_enter per round submits every post the
// round made (sends, receives, cancels) and waits for completions.
//
// Receives are multishot from a provided-buffer ring: one SQE keeps a
// socket reading, each arrival a CQE with the buffer the kernel picked.
// The caller still sees one completion per posted receive. An arrival for
// a socket whose receive is posted is delivered from its buffer, no copy.
// What arrives before the next post is the socket's read-ahead: the first
// arrival stays in its ring buffer and is delivered from it, while few
// sockets hold one (maxHeld); the rest is copied out, so that slow
// consumers cannot take the ring's buffers. Each multishot is armed with a
// byte cap (sqe.optlen, Linux 6.17+): what it may read is the posted max
// (at most maxAhead) less the read-ahead (the read that reaches the cap
// may fill its buffer), so a socket whose consumer falls behind is not
// read further and TCP pushes back on the peer (lesson 1, applied to
// multishot). Kernels without the cap get single-shot receives, one per
// arming, which read no more either. Buffers go back to the ring at the
// next Wait, once the caller has copied their bytes. Accepts are one
// multishot SQE per listener.
type uring struct {
	r       *ring
	buf     *bufRing
	wakefd  int
	wakeBuf *uint64
	fds     []*uringFD // indexed by descriptor
	gen     uint32
	spare   []*uringFD
	done    []pending     // completions made outside a Wait, delivered by the next
	recycle []uint16      // buffers delivered last round, back to the kernel at the next Wait
	nobufs  []*uringFD    // receives that found the buffer ring empty, armed again next Wait
	closing []queuedClose // Release's closes the kernel has not taken yet
	waiting []*uringFD    // posted receives that the read-ahead can complete
	arena   []byte        // delivery memory for read-ahead, reused every Wait
	ahead   aheadPool     // read-ahead memory
	holding int           // ring buffers held as read-ahead, at most maxHeld
	off     int
	out     []Completion // the running Wait's batch
	n       int
	peer    unix.RawSockaddrAny
	starved uint64 // receives that found every buffer in use (the tests look)
}

// pending is a completion waiting for a Wait, with its buffer, if any.
type pending struct {
	c   Completion
	bid int32 // -1: none
}

// uringFD is what the port knows of one socket.
type uringFD struct {
	fd       int
	gen      uint32
	token    uint64
	listener bool
	canceled bool

	recvWanted bool // the caller's receive is posted: the next arrival completes it
	recvArmed  bool // the multishot receive is in the kernel
	recvQueued bool // on nobufs
	recvLimit  int
	held       heldBuf // arrived before the caller posted for it, first, in its ring buffer
	ahead      []byte  // arrived before the caller posted for it, after held, copied out
	ended      bool    // the end of the stream (endErr nil) or an error comes after ahead
	endTold    bool
	endErr     error

	sendPosted bool
	sendBufs   [][]byte // kept reachable while the kernel reads them
	iov        []unix.Iovec
	msg        unix.Msghdr

	connecting bool
	sa         unix.RawSockaddrAny

	accepts     int // accepts posted and not completed
	acceptArmed bool
	stash       []Sock // accepted before an accept was posted for them
}

// user_data of an SQE: what it is, the socket's generation and descriptor.
const (
	udRecv = iota + 1
	udSend
	udConnect
	udAccept
	udWake
	udCancel
	udClose
)

func ud(kind uint64, st *uringFD) uint64 {
	return kind<<56 | uint64(st.gen&0xffffff)<<32 | uint64(uint32(st.fd))
}

func newUring(cfg Config) (Poller, error) {
	flags, err := uringAvailable()
	if err != nil {
		return nil, err
	}
	if cfg.FixedThread {
		// The thread that drives the port is not this one: the ring starts
		// disabled, and becomes that thread's when it enables it (start).
		flags |= ioringSetupRDisabled
	} else {
		// Any thread may drive the port: no single issuer, and so no
		// deferred task work (the kernel requires the first for the second).
		flags &^= ioringSetupSingleIssuer | ioringSetupDeferTaskrun
	}
	r, err := newRing(flags)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC) // blocking: the ring polls it
	if err != nil {
		r.close()
		return nil, err
	}
	return &uring{r: r, wakefd: wakefd, wakeBuf: new(uint64)}, nil
}

func (p *uring) Name() string { return "io_uring" }

// start readies the ring on first use, on the thread that drives the port:
// enabling a disabled single-issuer ring makes that thread its issuer.
func (p *uring) start() error {
	if p.buf != nil {
		return nil
	}
	r := p.r
	if r.flags&ioringSetupRDisabled != 0 {
		if err := ioUringRegister(r.fd, ioringRegisterEnable, nil, 0); err != nil {
			return err
		}
		r.flags &^= ioringSetupRDisabled
	}
	b, err := newBufRing(r, 0)
	if err != nil {
		return err
	}
	if p.arena, err = AllocMemory(arenaSize); err != nil {
		b.free()
		return err
	}
	p.buf = b
	p.armWake()
	return nil
}

func (p *uring) add(s Sock, token uint64, listener bool) error {
	if err := p.start(); err != nil {
		return err
	}
	var st *uringFD
	if n := len(p.spare); n > 0 {
		st, p.spare = p.spare[n-1], p.spare[:n-1]
	} else {
		st = new(uringFD)
	}
	p.gen++
	*st = uringFD{fd: s, gen: p.gen, token: token, listener: listener, held: heldBuf{bid: -1},
		sendBufs: st.sendBufs[:0], iov: st.iov[:0]}
	for len(p.fds) <= s {
		p.fds = append(p.fds, nil)
	}
	p.fds[s] = st
	return nil
}

func (p *uring) state(s Sock) *uringFD {
	if s < 0 || s >= len(p.fds) || p.fds[s] == nil {
		panic("poller: socket not registered")
	}
	return p.fds[s]
}

func (p *uring) Register(s Sock, token uint64) error { return p.add(s, token, false) }

func (p *uring) Listen(s Sock, token uint64) error { return p.add(s, token, true) }

func (p *uring) Unregister(s Sock) {
	st := p.state(s)
	if st.recvQueued {
		p.unqueue(st)
	}
	for i, q := range p.waiting {
		if q == st {
			p.waiting = append(p.waiting[:i], p.waiting[i+1:]...)
			break
		}
	}
	clear(st.sendBufs)
	p.dropAhead(st)
	p.fds[s] = nil
	p.spare = append(p.spare, st)
}

// queuedClose is a Release's close, queued at SQ position pos.
type queuedClose struct {
	fd  Sock
	pos uint32
}

// Release forgets s and queues its close on the ring, submitted by the
// next Wait: a connection's close costs no system call of its own.
func (p *uring) Release(s Sock, abort bool) {
	p.Unregister(s)
	if abort {
		lingerZero(s)
	}
	e := p.r.sqe()
	e.opcode = ioringOpClose
	e.fd = int32(s)
	e.flags = iosqeCQESkipSuccess
	e.userData = udClose << 56
	p.closing = append(p.closing, queuedClose{fd: s, pos: p.r.tail - 1})
}

// forgetSubmittedCloses drops the queued closes the kernel has taken.
func (p *uring) forgetSubmittedCloses() {
	keep := p.closing[:0]
	for _, c := range p.closing {
		if !p.r.submitted(c.pos) {
			keep = append(keep, c)
		}
	}
	p.closing = keep
}

func (p *uring) unqueue(st *uringFD) {
	for i, q := range p.nobufs {
		if q == st {
			p.nobufs = append(p.nobufs[:i], p.nobufs[i+1:]...)
			break
		}
	}
	st.recvQueued = false
}

// ---------------------------------------------------------------- accept

func (p *uring) PostAccept(s Sock, n int) error {
	st := p.state(s)
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

// ---------------------------------------------------------------- connect

func (p *uring) PostConnect(s Sock, addr netip.AddrPort) (bool, error) {
	st := p.state(s)
	n := rawSockaddr(addr, &st.sa)
	e := p.r.sqe()
	e.opcode = ioringOpConnect
	e.fd = int32(s)
	e.addr = uint64(uintptr(unsafe.Pointer(&st.sa)))
	e.off = uint64(n)
	e.userData = ud(udConnect, st)
	st.connecting = true
	return false, nil
}

// ---------------------------------------------------------------- receive

// PostRecv asks for the socket's next data: what the read-ahead holds
// completes it at the next Wait; else the next arrival does.
func (p *uring) PostRecv(s Sock, max int) error {
	st := p.state(s)
	st.recvLimit = max
	st.recvWanted = true
	if st.aheadLen() > 0 || (st.ended && !st.endTold) {
		p.waiting = append(p.waiting, st)
	}
	p.keepReading(st)
	return nil
}

// maxAhead bounds what a socket's receive reads before its consumer posts
// again: read-ahead is memory per connection. It is one buffer, what epoll
// reads at once: the multishot's cap is also the size of each read, and
// 32 KiB reads cost a stream more rounds. Up to maxHeld sockets keep
// theirs in the ring buffer it arrived in; copied out, 1000 connections
// reading 64 KiB ahead each would take 64 MiB (a slab chunk holds 128
// KiB, touched only as far as it is filled).
const maxAhead = 64 << 10

// keepReading arms a receive if the socket may be read: the stream goes on
// and the read-ahead is under the caller's max (and maxAhead). The receive
// may read at most what is left of that budget.
func (p *uring) keepReading(st *uringFD) {
	budget := min(st.recvLimit, maxAhead) - st.aheadLen()
	if st.recvArmed || st.recvQueued || st.ended || st.canceled || budget <= 0 {
		return
	}
	e := p.r.sqe()
	e.opcode = ioringOpRecv
	e.fd = int32(st.fd)
	e.flags = iosqeBufferSelect
	e.bufGroup = p.buf.bgid
	e.userData = ud(udRecv, st)
	if uringMultishotCap() {
		e.ioprio = ioringRecvMultishot
		e.fileIndex = uint32(budget) // sqe.optlen: the multishot's byte cap
	} else {
		e.len = uint32(min(budget, recvBufSize))
	}
	st.recvArmed = true
}

func (p *uring) recvDone(st *uringFD, cqe *ioCQE) {
	if cqe.flags&ioringCQEFMore == 0 {
		st.recvArmed = false
	}
	bid := int32(-1)
	if cqe.flags&ioringCQEFBuffer != 0 {
		bid = int32(cqe.flags >> ioringCQEBufferShift)
	}
	errno := syscall.Errno(-cqe.res)
	switch {
	case st.canceled:
		// Closing: what still arrives is dropped; the posted receive
		// completes once, when the multishot is over.
		if bid >= 0 {
			p.recycle = append(p.recycle, uint16(bid))
		}
		if !st.recvArmed && st.recvWanted {
			st.recvWanted = false
			p.emit(Completion{Op: OpRecv, Token: st.token, Err: ErrCanceled}, -1)
		}
		return
	case errno == syscall.ENOBUFS:
		// Every buffer is in use: the bytes wait in the socket, and the
		// receive is armed again once the last round's buffers are back.
		st.recvQueued = true
		p.nobufs = append(p.nobufs, st)
		p.starved++
		return
	case cqe.res <= 0: // end of stream, or an error
		if bid >= 0 {
			p.recycle = append(p.recycle, uint16(bid)) // should the kernel ever take a buffer for no bytes
		}
		st.ended = true
		if cqe.res < 0 {
			st.endErr = errno
		}
		if st.recvWanted {
			p.waiting = append(p.waiting, st)
		}
		return
	}
	if st.recvWanted && st.aheadLen() == 0 {
		st.recvWanted = false
		p.emit(Completion{Op: OpRecv, Token: st.token, Data: p.buf.data(uint16(bid), int(cqe.res))}, bid)
	} else {
		p.keepAhead(st, uint16(bid), int(cqe.res))
	}
	p.keepReading(st) // a receive over (its cap reached, or single-shot): the next, if the budget allows
}

// ---------------------------------------------------------------- send

// PostSend queues the send for the round's io_uring_enter; it never
// completes at once.
func (p *uring) PostSend(s Sock, bufs [][]byte) (int, bool, error) {
	st := p.state(s)
	st.sendBufs = append(st.sendBufs[:0], bufs...)
	e := p.r.sqe()
	e.fd = int32(s)
	e.opFlags = unix.MSG_NOSIGNAL | unix.MSG_WAITALL
	e.userData = ud(udSend, st)
	if len(bufs) == 1 {
		e.opcode = ioringOpSend
		e.addr = uint64(uintptr(unsafe.Pointer(&bufs[0][0])))
		e.len = uint32(len(bufs[0]))
	} else {
		st.iov = st.iov[:0]
		for _, b := range bufs {
			v := unix.Iovec{Base: &b[0]}
			v.SetLen(len(b))
			st.iov = append(st.iov, v)
		}
		st.msg = unix.Msghdr{Iov: &st.iov[0]}
		st.msg.SetIovlen(len(st.iov))
		e.opcode = ioringOpSendmsg
		e.addr = uint64(uintptr(unsafe.Pointer(&st.msg)))
		e.len = 1
	}
	st.sendPosted = true
	return 0, false, nil
}

// ---------------------------------------------------------------- cancel

// Cancel stops everything the socket has outstanding; each operation still
// completes exactly once.
func (p *uring) Cancel(s Sock) {
	st := p.state(s)
	if st.canceled {
		return
	}
	st.canceled = true
	if st.listener {
		if st.acceptArmed {
			p.cancel(ud(udAccept, st))
		} else {
			p.finishAccepts(st)
		}
		return
	}
	// By user_data, never by descriptor: the caller closes the socket as
	// soon as its own operations are over, possibly before the cancel is
	// submitted, and the number may by then be another socket's.
	for _, op := range []struct {
		on   bool
		kind uint64
	}{{st.recvArmed, udRecv}, {st.sendPosted, udSend}, {st.connecting, udConnect}} {
		if op.on {
			p.cancel(ud(op.kind, st))
		}
	}
	if st.recvQueued {
		p.unqueue(st)
	}
	p.dropAhead(st)
	if st.recvWanted && !st.recvArmed {
		st.recvWanted = false
		p.later(Completion{Op: OpRecv, Token: st.token, Err: ErrCanceled}, -1)
	}
}

// cancel submits an ASYNC_CANCEL of the request with user_data target. Its
// own completion is skipped on success.
func (p *uring) cancel(target uint64) {
	e := p.r.sqe()
	e.opcode = ioringOpAsyncCancel
	e.flags = iosqeCQESkipSuccess
	e.fd = -1
	e.addr = target
	e.userData = udCancel << 56
}

// ---------------------------------------------------------------- wake

func (p *uring) armWake() {
	e := p.r.sqe()
	e.opcode = ioringOpRead
	e.fd = int32(p.wakefd)
	e.addr = uint64(uintptr(unsafe.Pointer(p.wakeBuf)))
	e.len = 8
	e.userData = udWake << 56
}

func (p *uring) Wake() { rawWriteEventfd(p.wakefd) }

// ---------------------------------------------------------------- wait

func (p *uring) Wait(batch []Completion, timeout time.Duration) (int, error) {
	if p.r.lost {
		return 0, ErrPortLost
	}
	if err := p.start(); err != nil {
		return 0, err
	}
	// The caller has copied what the last round delivered.
	for _, bid := range p.recycle {
		p.buf.put(bid)
	}
	p.recycle = p.recycle[:0]
	p.buf.publish(len(p.nobufs) > 0)
	for _, st := range p.nobufs {
		st.recvQueued = false
		p.keepReading(st)
	}
	p.nobufs = p.nobufs[:0]

	p.out, p.n, p.off = batch, 0, 0
	k := 0
	for ; k < len(p.done) && p.n < len(batch); k++ {
		p.emit(p.done[k].c, p.done[k].bid)
	}
	p.done = p.done[:copy(p.done, p.done[k:])]
	p.serveAhead()
	p.harvest()
	var min uint32
	if p.n == 0 && len(p.done) == 0 && len(p.waiting) == 0 && timeout != 0 {
		min = 1
	}
	err := p.r.enter(min, timeout)
	if len(p.closing) > 0 {
		p.forgetSubmittedCloses()
	}
	p.harvest()
	p.serveAhead()
	n := p.n
	p.out = nil
	return n, err
}

// harvest turns queued CQEs into completions while the batch has room;
// each CQE makes at most one completion in the batch, and the rest wait in
// the ring for the next Wait.
func (p *uring) harvest() {
	r := p.r
	for p.n < len(p.out) && r.ready() {
		r.harvest(1, p.complete)
	}
}

// emit delivers c in the running Wait's batch (a buffer it carries goes
// back to the kernel at the next Wait), or keeps it for the next Wait.
func (p *uring) emit(c Completion, bid int32) {
	if p.n < len(p.out) {
		p.out[p.n] = c
		p.n++
		if bid >= 0 {
			p.recycle = append(p.recycle, uint16(bid))
		}
		return
	}
	p.later(c, bid)
}

// later keeps c for the next Wait.
func (p *uring) later(c Completion, bid int32) { p.done = append(p.done, pending{c, bid}) }

func (p *uring) complete(cqe *ioCQE) {
	kind := cqe.userData >> 56
	switch kind {
	case udWake:
		p.armWake()
		return
	case udCancel:
		return // a cancel that found nothing: what it aimed at completed first
	case udClose:
		return // a close that failed: the descriptor is gone either way
	}
	if cqe.flags&ioringCQEFBuffer != 0 {
		p.buf.took()
	}
	fd := int(uint32(cqe.userData))
	if fd >= len(p.fds) || p.fds[fd] == nil || p.fds[fd].gen&0xffffff != uint32(cqe.userData>>32)&0xffffff {
		// A socket already forgotten: its receive's last arrivals, after
		// the cancel. Their buffers still go back to the ring.
		if cqe.flags&ioringCQEFBuffer != 0 {
			p.recycle = append(p.recycle, uint16(cqe.flags>>ioringCQEBufferShift))
		}
		return
	}
	st := p.fds[fd]
	switch kind {
	case udRecv:
		p.recvDone(st, cqe)
	case udSend:
		st.sendPosted = false
		// Drop every reference to the sent bytes: they go back to the
		// caller's pool, and a kept one would hold them for good.
		clear(st.sendBufs)
		clear(st.iov)
		st.sendBufs, st.iov, st.msg = st.sendBufs[:0], st.iov[:0], unix.Msghdr{}
		c := Completion{Op: OpSend, Token: st.token}
		switch {
		case cqe.res >= 0:
			c.N = int(cqe.res)
		case -cqe.res == int32(syscall.ECANCELED):
			c.Err = ErrCanceled
		default:
			c.Err = syscall.Errno(-cqe.res)
		}
		p.emit(c, -1)
	case udConnect:
		st.connecting = false
		c := Completion{Op: OpConnect, Token: st.token}
		switch {
		case -cqe.res == int32(syscall.ECANCELED):
			c.Err = ErrCanceled
		case cqe.res < 0:
			c.Err = syscall.Errno(-cqe.res)
		}
		p.emit(c, -1)
	case udAccept:
		p.acceptDone(st, cqe)
	}
}

func (p *uring) Close() error {
	// Closes still queued are made here: the ring's end would drop them.
	for _, c := range p.closing {
		if !p.r.submitted(c.pos) {
			CloseSock(c.fd)
		}
	}
	p.closing = nil
	p.r.close()
	p.ahead.close()
	if p.buf != nil {
		p.buf.free()
		FreeMemory(p.arena)
	}
	return unix.Close(p.wakefd)
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
