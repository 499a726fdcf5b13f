package poller

import (
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
	fds     table[uringFD] // by descriptor
	done    doneQueue[pending]
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

	dbuf      *bufRing   // datagram buffers (udp_uring_linux.go); made with the first datagram socket
	drecycle  []uint16   // datagram buffers delivered or dropped last round, back at the next Wait
	dgStarved bool       // a datagram receive found the ring empty: offer all at the next Wait
	dgArm     []*uringFD // datagram sockets whose receive is armed again at the next Wait
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

	rx uringRecv // the receive side

	sendPosted bool
	file       sendFile // a PostSendFile waiting for the socket to be writable (filePolled)
	filePolled bool     // ... its POLL_ADD is in the ring
	fileFull   bool     // the last sendfile was short: the socket's buffer is full
	sendBufs   [][]byte // kept reachable while the kernel reads them
	iov        []unix.Iovec
	msg        unix.Msghdr

	connecting bool
	sa         unix.RawSockaddrAny

	accepts     int // accepts posted and not completed
	acceptArmed bool
	stash       []Sock // accepted before an accept was posted for them

	dg *uringDgram // a datagram socket's (udp_uring_linux.go); nil: a stream's
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
	udRecvFrom
	udSendTo
	udSendFile
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
	b, err := newBufRing(r, 0, recvBufSize, recvBufCount)
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

func (p *uring) add(s Sock, token uint64, listener bool) (Ref, error) {
	if err := p.start(); err != nil {
		return Ref{}, err
	}
	st, r := p.fds.add(s, s)
	*st = uringFD{fd: s, gen: r.gen, token: token, listener: listener, rx: uringRecv{held: heldBuf{bid: -1}},
		sendBufs: st.sendBufs[:0], iov: st.iov[:0]}
	return r, nil
}

func (p *uring) Register(s Sock, token uint64) (Ref, error) { return p.add(s, token, false) }

func (p *uring) Listen(s Sock, token uint64) (Ref, error) { return p.add(s, token, true) }

func (p *uring) Unregister(r Ref) {
	st := p.fds.get(r)
	if st.rx.kernel == rxStarved {
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
	if st.dg != nil {
		p.forgetDgram(st)
	}
	p.fds.remove(r)
}

// queuedClose is a Release's close, queued at SQ position pos.
type queuedClose struct {
	fd  Sock
	pos uint32
}

// Release forgets s and queues its close on the ring, submitted by the
// next Wait: a connection's close costs no system call of its own.
func (p *uring) Retoken(r Ref, token uint64) { p.fds.get(r).token = token }

func (p *uring) Release(r Ref, abort bool) {
	s := r.s
	p.Unregister(r)
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
	st.rx.kernel = rxIdle
}

// ---------------------------------------------------------------- send

// PostSend queues the send for the round's io_uring_enter; it never
// completes at once.
func (p *uring) PostSend(r Ref, bufs [][]byte) (int, bool, error) {
	st := p.fds.get(r)
	var total int
	st.iov, total = gather(st.iov[:0], bufs, iovec)
	if total == 0 {
		return 0, true, nil // nothing to send: done at once
	}
	st.sendBufs = append(st.sendBufs[:0], bufs...)
	e := p.r.sqe()
	e.fd = int32(st.fd)
	e.opFlags = unix.MSG_NOSIGNAL | unix.MSG_WAITALL
	e.userData = ud(udSend, st)
	if len(st.iov) == 1 {
		e.opcode = ioringOpSend
		e.addr = uint64(uintptr(unsafe.Pointer(st.iov[0].Base)))
		e.len = uint32(st.iov[0].Len)
	} else {
		st.msg = unix.Msghdr{Iov: &st.iov[0]}
		st.msg.SetIovlen(len(st.iov))
		e.opcode = ioringOpSendmsg
		e.addr = uint64(uintptr(unsafe.Pointer(&st.msg)))
		e.len = 1
	}
	st.sendPosted = true
	return 0, false, nil
}

// PostSendFile makes the sendfile(2) at once, on this thread: a send
// that completes at once. When the socket takes nothing, a POLL_ADD waits
// for it to be writable, and the completion of that makes the sendfile
// and the OpSend. (IORING_OP_SPLICE would take a pipe per connection and
// two linked submissions per send; this takes one system call, as an
// epoll write does, and moves a socket buffer's worth at a time.)
//
// After a short sendfile the buffer is full: trying again at once failed
// with EAGAIN or moved a sliver (measured: 509 EAGAIN and a tenth under
// 360 KB in 1,289 calls for 1 GiB, where waiting moves 2 MB a call), and
// each try reads its pages into the kernel's pipe first. So the next one
// waits for room, as an epoll loop does. A short count because the file
// ended costs one poll that completes at once.
func (p *uring) PostSendFile(r Ref, f File, off int64, n int) (int, bool, error) {
	st := p.fds.get(r)
	if st.fileFull {
		st.fileFull = false
		st.file = sendFile{f, off, n}
		p.pollWritable(st)
		return 0, false, nil
	}
	w, err := sendfile(st.fd, f, off, n)
	switch err {
	case 0:
		st.fileFull = w < min(n, maxSendFile)
		return w, true, nil
	case syscall.EAGAIN:
		st.file = sendFile{f, off, n}
		p.pollWritable(st)
		return 0, false, nil
	}
	return 0, false, err
}

func (p *uring) pollWritable(st *uringFD) {
	e := p.r.sqe()
	e.opcode = ioringOpPollAdd
	e.fd = int32(st.fd)
	e.opFlags = unix.POLLOUT // poll32_events
	e.userData = ud(udSendFile, st)
	st.filePolled = true
}

// sendFileReady makes the sendfile of a PostSendFile whose socket turned
// writable (res: the poll's result), or polls again if it is still full.
func (p *uring) sendFileReady(st *uringFD, res int32) {
	st.filePolled = false
	c := Completion{Op: OpSend, Token: st.token}
	switch {
	case -res == int32(syscall.ECANCELED) || st.canceled:
		c.Err = ErrCanceled
	case res < 0:
		c.Err = syscall.Errno(-res)
	default:
		w, err := sendfile(st.fd, st.file.f, st.file.off, st.file.n)
		if err == syscall.EAGAIN {
			p.pollWritable(st)
			return
		}
		c.N = w
		if err != 0 {
			c.Err = err
		}
		st.fileFull = err == 0 && w < min(st.file.n, maxSendFile)
	}
	st.file = sendFile{}
	p.emit(c, -1)
}

// ---------------------------------------------------------------- cancel

// Cancel stops everything the socket has outstanding; each operation still
// completes exactly once.
func (p *uring) Cancel(r Ref) {
	st := p.fds.get(r)
	if st.canceled {
		return
	}
	st.canceled = true
	if st.dg != nil {
		p.cancelDgram(st)
		return
	}
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
	}{{st.rx.kernel == rxArmed, udRecv}, {st.sendPosted, udSend}, {st.filePolled, udSendFile}, {st.connecting, udConnect}} {
		if op.on {
			p.cancel(ud(op.kind, st))
		}
	}
	if st.rx.kernel == rxStarved {
		p.unqueue(st)
	}
	p.dropAhead(st)
	if st.rx.wanted && st.rx.kernel != rxArmed {
		st.rx.wanted = false
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

// WaitFD is the ring: readable while its completion queue holds entries
// (Wake's eventfd read among them). With deferred task work the kernel
// makes completions only when the issuer enters the ring, and a poll of
// the ring is not woken for that work: no descriptor then.
func (p *uring) WaitFD() (int, bool) {
	if p.r.flags&ioringSetupDeferTaskrun != 0 {
		return 0, false
	}
	return p.r.fd, true
}

// Quiet: a receive that found the buffer ring empty is armed again only
// by the next Wait, which no completion of the ring would bring; so are a
// datagram socket's multishot receive, and the datagram buffers handed
// back (udp_uring_linux.go).
func (p *uring) Quiet() bool {
	return p.done.len() == 0 && len(p.waiting) == 0 && len(p.nobufs) == 0 &&
		len(p.dgArm) == 0 && len(p.drecycle) == 0 && !p.dgStarved
}

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
	if p.dbuf != nil {
		for _, bid := range p.drecycle {
			p.dbuf.put(bid)
		}
		p.drecycle = p.drecycle[:0]
		p.dbuf.publish(p.dgStarved)
		p.dgStarved = false
		p.armPending()
	}
	p.buf.publish(len(p.nobufs) > 0)
	for _, st := range p.nobufs {
		st.rx.kernel = rxIdle
		p.keepReading(st)
	}
	p.nobufs = p.nobufs[:0]

	p.out, p.n, p.off = batch, 0, 0
	for _, d := range p.done.take(len(batch)) {
		p.emit(d.c, d.bid)
	}
	p.serveAhead()
	p.harvest()
	var min uint32
	if p.n == 0 && p.done.len() == 0 && len(p.waiting) == 0 && timeout != 0 {
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
		switch {
		case bid >= 0 && bid&dgramBufMarker != 0:
			p.drecycle = append(p.drecycle, uint16(bid))
		case bid >= 0:
			p.recycle = append(p.recycle, uint16(bid))
		}
		return
	}
	p.later(c, bid)
}

// later keeps c for the next Wait.
func (p *uring) later(c Completion, bid int32) { p.done.push(pending{c, bid}) }

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
	ring, back := p.buf, &p.recycle
	if kind == udRecvFrom {
		ring, back = p.dbuf, &p.drecycle
	}
	if cqe.flags&ioringCQEFBuffer != 0 {
		ring.took()
	}
	genMask := uint32(0xffffff)
	if kind == udRecvFrom || kind == udSendTo {
		genMask = 0xffff // the top 8 bits are a slot (udDgram)
	}
	st := p.fds.match(int(uint32(cqe.userData)), uint32(cqe.userData>>32), genMask)
	if st == nil {
		// A socket already forgotten: its receive's last arrivals, after
		// the cancel. Their buffers still go back to the ring.
		if cqe.flags&ioringCQEFBuffer != 0 {
			*back = append(*back, uint16(cqe.flags>>ioringCQEBufferShift))
		}
		return
	}
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
	case udSendFile:
		p.sendFileReady(st, cqe.res)
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
	case udRecvFrom, udSendTo:
		if st.dg == nil {
			return // not a datagram socket's: the slot bits matched another's generation
		}
		if kind == udRecvFrom {
			p.recvFromDone(st, cqe)
		} else {
			p.sendToDone(st, cqe)
		}
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
	if p.dbuf != nil {
		p.dbuf.free()
	}
	if p.buf != nil {
		p.buf.free()
		FreeMemory(p.arena)
	}
	return unix.Close(p.wakefd)
}
