package poller

import (
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	eventsPerWait = 256
)

// fdState is what the port knows of one registered socket. Readiness is
// cached (edge-triggered registration, once for life), so posting an
// operation on a socket already known to be ready costs no system call.
type fdState struct {
	fd         int
	token      uint64
	listener   bool
	readable   bool
	writable   bool
	hup        bool // the peer's FIN, a reset or an error is pending behind the data
	queued     bool // on the ready list
	recvMax    int  // > 0: a receive of at most this many bytes is posted
	accepts    int  // listener: accepts posted
	send       [][]byte
	file       sendFile // the posted send's file range, when it is one (fileN > 0)
	sending    bool
	connecting bool
	dg         *epollDgram // a datagram socket's (udp_epoll_linux.go); nil: a stream's
}

// dropSend forgets the posted send's buffers, keeping the room for the next.
func (st *fdState) dropSend() {
	clear(st.send)
	st.send = st.send[:0]
	st.file = sendFile{}
}

// sendFile is a posted PostSendFile waiting for the socket to be writable.
type sendFile struct {
	f   File
	off int64
	n   int
}

func (st *fdState) canProceed() bool {
	return (st.readable && (st.recvMax > 0 || st.accepts > 0 || (st.dg != nil && st.dg.slots.wanted > 0))) ||
		(st.writable && (st.sending || st.connecting))
}

type epoll struct {
	epfd   int
	wakefd int
	events []unix.EpollEvent
	fds    table[fdState] // by descriptor
	ready  []*fdState     // sockets with a posted operation that can proceed
	done   doneQueue[Completion]
	arena  recvArena
	iov    []unix.Iovec
	rsa    unix.RawSockaddrAny

	dio     dgramIO
	round   int64      // Waits so far: datagram slots delivered in this one are not reused in it
	retired retiredMem // receive memory of datagram sockets unregistered this round
}

func newEpoll(Config) (Poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd), Pad: -1}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, err
	}
	arena, err := newRecvArena()
	if err != nil {
		unix.Close(wakefd)
		unix.Close(epfd)
		return nil, err
	}
	return &epoll{
		epfd:   epfd,
		wakefd: wakefd,
		events: make([]unix.EpollEvent, eventsPerWait),
		arena:  arena,
		iov:    make([]unix.Iovec, 0, maxGather),
	}, nil
}

func (p *epoll) Name() string { return "epoll" }

// add registers s; the event data carries the generation, which tells
// an event of a closed descriptor from one of its reuse.
func (p *epoll) add(s Sock, token uint64, listener bool) (Ref, error) {
	st, r := p.fds.add(s, s)
	*st = fdState{fd: s, token: token, listener: listener, writable: !listener, send: st.send[:0]}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(s), Pad: int32(r.gen)}
	if !listener {
		ev.Events |= unix.EPOLLOUT
	}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, s, &ev); err != nil {
		p.fds.remove(r)
		return Ref{}, err
	}
	return r, nil
}

func (p *epoll) Register(s Sock, token uint64) (Ref, error) { return p.add(s, token, false) }

func (p *epoll) Listen(s Sock, token uint64) (Ref, error) { return p.add(s, token, true) }

func (p *epoll) PostAccept(r Ref, n int) error {
	st := p.fds.get(r)
	st.accepts += n
	p.consider(st)
	return nil
}

func (p *epoll) PostConnect(r Ref, addr netip.AddrPort) (bool, error) {
	st := p.fds.get(r)
	err := unix.Connect(st.fd, toSockaddr(addr))
	switch err {
	case nil:
		return true, nil
	case unix.EINPROGRESS:
		st.writable = false
		st.connecting = true
		return false, nil
	}
	return false, err
}

func (p *epoll) PostRecv(r Ref, max int) error {
	st := p.fds.get(r)
	st.recvMax = max
	p.consider(st)
	return nil
}

func (p *epoll) PostSend(r Ref, bufs [][]byte) (int, bool, error) {
	st := p.fds.get(r)
	if empty(bufs) {
		return 0, true, nil
	}
	if st.writable {
		n, err := p.writev(st, bufs)
		switch {
		case err == 0:
			return n, true, nil
		case err != syscall.EAGAIN:
			return 0, false, err
		}
	}
	// The caller may reuse bufs once this returns: keep a copy of the
	// slice headers (the bytes themselves stay put until the completion).
	st.send = append(st.send[:0], bufs...)
	st.sending = true
	return 0, false, nil
}

// writev writes what the socket takes of bufs; a short write means the
// socket's buffer is full, so the next write waits for an EPOLLOUT edge.
func (p *epoll) writev(st *fdState, bufs [][]byte) (int, syscall.Errno) {
	iov, total := gather(p.iov[:0], bufs, iovec)
	if total == 0 {
		return 0, 0
	}
	for {
		n, err := rawWritev(st.fd, iov)
		if err == syscall.EINTR {
			continue
		}
		clear(iov)
		if err != 0 {
			if err == syscall.EAGAIN {
				st.writable = false
			}
			return 0, err
		}
		if n < total {
			st.writable = false
		}
		return n, 0
	}
}

// PostSendFile sends at once what the socket takes, else when it is
// writable; Wait makes the sendfile then.
func (p *epoll) PostSendFile(r Ref, f File, off int64, n int) (int, bool, error) {
	st := p.fds.get(r)
	if st.writable {
		w, err := p.sendfile(st, sendFile{f, off, n})
		switch {
		case err == 0:
			return w, true, nil
		case err != syscall.EAGAIN:
			return 0, false, err
		}
	}
	st.file = sendFile{f, off, n}
	st.sending = true
	return 0, false, nil
}

// sendfile is writev for a file range. Unlike writev's, a short count
// does not tell that the socket's buffer is full: the file may have ended
// first, and then no EPOLLOUT edge would come. Only EAGAIN (which the next
// post meets at once if the buffer is full) waits for one.
func (p *epoll) sendfile(st *fdState, sf sendFile) (int, syscall.Errno) {
	n, err := sendfile(st.fd, sf.f, sf.off, sf.n)
	if err == syscall.EAGAIN {
		st.writable = false
	}
	return n, err
}

func (p *epoll) Cancel(r Ref) {
	st := p.fds.get(r)
	if st.dg != nil {
		p.cancelDgram(st)
		return
	}
	if st.recvMax > 0 {
		st.recvMax = 0
		p.done.push(Completion{Op: OpRecv, Token: st.token, Err: ErrCanceled})
	}
	if st.sending {
		st.sending = false
		st.dropSend()
		p.done.push(Completion{Op: OpSend, Token: st.token, Err: ErrCanceled})
	}
	if st.connecting {
		st.connecting = false
		p.done.push(Completion{Op: OpConnect, Token: st.token, Err: ErrCanceled})
	}
	for ; st.accepts > 0; st.accepts-- {
		p.done.push(Completion{Op: OpAccept, Token: st.token, Sock: NoSock, Err: ErrCanceled})
	}
}

func (p *epoll) Retoken(r Ref, token uint64) { p.fds.get(r).token = token }

func (p *epoll) Release(r Ref, abort bool) { releaseNow(p, r, abort) }

func (p *epoll) Unregister(r Ref) {
	st := p.fds.get(r)
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, st.fd, nil)
	if st.queued {
		for i, q := range p.ready {
			if q == st {
				p.ready = append(p.ready[:i], p.ready[i+1:]...)
				break
			}
		}
	}
	st.dropSend()
	if st.dg != nil {
		clear(st.dg.send)
		p.retired.add(st.dg.slots.mem)
	}
	*st = fdState{send: st.send} // its room for send views is kept for reuse
	p.fds.remove(r)
}

// consider puts st on the ready list when a posted operation can proceed.
func (p *epoll) consider(st *fdState) {
	if !st.queued && st.canProceed() {
		st.queued = true
		p.ready = append(p.ready, st)
	}
}

func (p *epoll) Wake() { rawWriteEventfd(p.wakefd) }

// WaitFD is the epoll instance: readable while a socket has an event not
// yet harvested (they are edge-triggered: Wait takes each once) or the
// wake eventfd was written (level-triggered until Wait reads it).
func (p *epoll) WaitFD() (int, bool) { return p.epfd, true }

func (p *epoll) Quiet() bool { return p.done.len() == 0 && len(p.ready) == 0 }

func (p *epoll) Wait(batch []Completion, timeout time.Duration) (int, error) {
	p.arena.reset()
	p.round++
	p.retired.free()
	n := copy(batch, p.done.take(len(batch)))
	n = p.runReady(batch, n)
	if n == len(batch) {
		return n, nil
	}
	var k int
	var err syscall.Errno
	if n > 0 || timeout == 0 || len(p.ready) > 0 {
		k, err = rawEpollPoll(p.epfd, p.events)
	} else {
		k, err = p.block(timeout)
	}
	if err != 0 && err != syscall.EINTR {
		return n, err
	}
	for i := 0; i < k; i++ {
		ev := &p.events[i]
		fd := int(ev.Fd)
		if fd == p.wakefd {
			rawReadEventfd(p.wakefd)
			continue
		}
		st := p.fds.match(fd, uint32(ev.Pad), ^uint32(0))
		if st == nil {
			continue // unregistered since the kernel queued the event
		}
		if ev.Events&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			st.readable = true
		}
		if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			st.hup = true
		}
		if ev.Events&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			st.writable = true
		}
		p.consider(st)
	}
	return p.runReady(batch, n), nil
}

// block is the one blocking call, through the runtime so that the thread's
// P is handed off while it sleeps.
func (p *epoll) block(timeout time.Duration) (int, syscall.Errno) {
	ms := -1
	if timeout > 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	k, err := unix.EpollWait(p.epfd, p.events, ms)
	if err != nil {
		return 0, err.(syscall.Errno)
	}
	return k, 0
}

// runReady performs the posted operations of ready sockets, each socket at
// most once per call; what a full batch or arena cuts short stays queued, in
// order, for the next call.
func (p *epoll) runReady(batch []Completion, n int) int {
	count := len(p.ready)
	i := 0
	for ; i < count && n < len(batch); i++ {
		st := p.ready[i]
		st.queued = false
		n = p.progress(st, batch, n)
	}
	p.ready = p.ready[:copy(p.ready, p.ready[i:])]
	return n
}

func (p *epoll) progress(st *fdState, batch []Completion, n int) int {
	if st.dg != nil {
		return p.progressDgram(st, batch, n)
	}
	if st.listener {
		for st.readable && st.accepts > 0 && n < len(batch) {
			fd, err := rawAccept4(st.fd, &p.rsa)
			switch err {
			case 0:
				st.accepts--
				batch[n] = Completion{Op: OpAccept, Token: st.token, Sock: fd, Peer: fromRaw(&p.rsa)}
				n++
			case syscall.EAGAIN:
				st.readable = false
			case syscall.EINTR, syscall.ECONNABORTED:
			default:
				st.accepts--
				batch[n] = Completion{Op: OpAccept, Token: st.token, Sock: NoSock, Err: err}
				n++
			}
		}
		p.consider(st)
		return n
	}
	if st.connecting && st.writable && n < len(batch) {
		st.connecting = false
		c := Completion{Op: OpConnect, Token: st.token}
		if e := rawSockError(st.fd); e != 0 {
			c.Err = e
		}
		batch[n] = c
		n++
	}
	if st.sending && st.writable && n < len(batch) {
		var w int
		var err syscall.Errno
		if st.file.n > 0 {
			w, err = p.sendfile(st, st.file)
		} else {
			w, err = p.writev(st, st.send)
		}
		if err != syscall.EAGAIN {
			st.sending = false
			st.dropSend()
			c := Completion{Op: OpSend, Token: st.token, N: w}
			if err != 0 {
				c.Err = err
			}
			batch[n] = c
			n++
		}
	}
	if st.recvMax > 0 && st.readable && n < len(batch) {
		n = p.recv(st, batch, n)
	}
	p.consider(st)
	return n
}

func (p *epoll) recv(st *fdState, batch []Completion, n int) int {
	buf := p.arena.room(st.recvMax)
	if buf == nil {
		return n // the arena is used up: this receive waits for the next Wait
	}
	space := len(buf)
	for {
		r, err := rawRead(st.fd, buf)
		switch err {
		case 0:
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			st.readable = false
			return n
		default:
			st.recvMax = 0
			batch[n] = Completion{Op: OpRecv, Token: st.token, Err: err}
			return n + 1
		}
		st.recvMax = 0
		// A short read emptied the socket: later data raises a new edge.
		// Not so for a FIN or error that came with the data: its edge is
		// spent, and only the next read reports it.
		if r > 0 && r < space && !st.hup {
			st.readable = false
		}
		batch[n] = Completion{Op: OpRecv, Token: st.token, Data: buf[:r:r]}
		p.arena.used(r)
		return n + 1
	}
}

func (p *epoll) Close() error {
	p.arena.free()
	p.retired.free()
	unix.Close(p.wakefd)
	return unix.Close(p.epfd)
}
