package poller

import (
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/pyiocp/pyiocp/gomod/internal/winapi"
)

const (
	entriesPerWait = 256
	maxSendBuf     = 1 << 30 // a WSABUF's length is 32 bits
)

// sockState is what the port knows of one associated socket.
type sockState struct {
	s          Sock
	token      uint64
	slot       uint32 // in iocp.socks, with gen: what a context names it by
	gen        uint32
	family     int  // listener: AcceptEx accepts into sockets of this family
	recvMax    int  // > 0: a receive of at most this many bytes is posted
	probing    bool // ... and its zero-byte WSARecv is in the kernel
	queued     bool // ... or its read waits on the ready list
	readable   bool // the last read filled its buffer: read again without a probe
	sending    bool
	transmit   bool // ... and it is a TransmitFile (sendfile_windows.go)
	connecting bool
	accepts    int         // AcceptEx calls in the kernel
	first      *firstState // a listener whose accepts wait for the first bytes; nil: plain
	canceled   bool
	pin        runtime.Pinner // the bytes of the send in the kernel
	dg         *iocpDgram     // a datagram socket's (udp_iocp_windows.go); nil: a stream's
}

// iocp is one I/O completion port. Every posted operation that did not fail
// at the post completes through the port exactly once: the sockets are not
// put in FILE_SKIP_COMPLETION_PORT_ON_SUCCESS mode, so an operation that
// finished at once still queues its packet, and no post returns done=true
// (but an empty send). Skipping those packets would save a harvest per
// immediate send; that waits until it can be tested on Windows itself (CI
// runs these tests under Wine).
type iocp struct {
	port      windows.Handle
	socks     table[sockState] // by a slot of its own: a SOCKET is a handle
	ctxs      ctxPool
	firstBufs slabPool[firstBuf] // first-data accepts' buffers (iocp_first_windows.go)
	entries   []winapi.OverlappedEntry
	ready     []*sockState // receives whose read waits for the next Wait
	done      doneQueue[Completion]
	arena     recvArena
	wsabufs   []windows.WSABuf

	recancel []sockID // canceled with a TransmitFile in the kernel (sendfile_windows.go)

	round   int64        // Waits so far: datagram slots delivered in this one are not reused in it
	dgArm   []*sockState // datagram sockets whose posted receives wait for a free slot
	retired retiredMem   // receive memory of datagram sockets unregistered this round
}

func newIOCP(Config) (Poller, error) {
	if err := wsaStartup(); err != nil {
		return nil, err
	}
	port, err := windows.CreateIoCompletionPort(windows.InvalidHandle, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	arena, err := newRecvArena()
	if err != nil {
		windows.CloseHandle(port)
		return nil, err
	}
	return &iocp{
		port:    port,
		entries: make([]winapi.OverlappedEntry, entriesPerWait),
		arena:   arena,
		wsabufs: make([]windows.WSABuf, 0, maxGather),
	}, nil
}

func (p *iocp) Name() string { return "iocp" }

// add associates s with the port for the socket's life. A context names
// the socket by slot and generation (it lives outside the Go heap and may
// hold no pointer), so a completion finds its state without a lookup, as
// every post does by the Ref.
func (p *iocp) add(s Sock, token uint64) (*sockState, Ref, error) {
	if _, err := windows.CreateIoCompletionPort(s, p.port, 0, 0); err != nil {
		return nil, Ref{}, err
	}
	st, r := p.socks.add(s, -1)
	*st = sockState{s: s, token: token, slot: uint32(r.slot), gen: r.gen}
	return st, r, nil
}

func (p *iocp) Register(s Sock, token uint64) (Ref, error) {
	_, r, err := p.add(s, token)
	return r, err
}

// wsaBuf describes b (not empty) for WSASend: at most maxSendBuf bytes of
// it (the rest is for the next post).
func wsaBuf(b []byte) windows.WSABuf {
	return windows.WSABuf{Len: uint32(min(len(b), maxSendBuf)), Buf: &b[0]}
}

func (p *iocp) PostSend(r Ref, bufs [][]byte) (int, bool, error) {
	st := p.socks.get(r)
	wb, _ := gather(p.wsabufs[:0], bufs, wsaBuf)
	if len(wb) == 0 {
		return 0, true, nil
	}
	ctx, err := p.ctxs.get(ctxSend, st)
	if err != nil {
		return 0, false, err
	}
	// The kernel reads the bytes until the completion: pin them.
	for _, b := range wb {
		st.pin.Pin(b.Buf)
	}
	// WSASend captures the WSABUF array itself; the array may be reused.
	err = windows.WSASend(st.s, &wb[0], uint32(len(wb)), nil, 0, &ctx.ov, nil)
	clear(wb)
	if err != nil && err != windows.ERROR_IO_PENDING {
		st.pin.Unpin()
		p.ctxs.put(ctx)
		return 0, false, err
	}
	st.sending = true
	return 0, false, nil
}

// Cancel: CancelIoEx makes every operation of s in the kernel complete
// through the port (with ERROR_OPERATION_ABORTED unless it had finished); a
// read waiting on the ready list is not in the kernel and completes here.
func (p *iocp) Cancel(r Ref) {
	st := p.socks.get(r)
	st.canceled = true
	if st.dg != nil {
		p.cancelDgram(st)
		return
	}
	if st.queued {
		p.unqueue(st)
		st.recvMax = 0
		p.done.push(Completion{Op: OpRecv, Token: st.token, Err: ErrCanceled})
	}
	if st.probing || st.sending || st.connecting || st.accepts > 0 {
		windows.CancelIoEx(st.s, nil)
	}
	if st.transmit {
		p.recancel = append(p.recancel, sockID{st.slot, st.gen})
	}
}

func (p *iocp) Retoken(r Ref, token uint64) { p.socks.get(r).token = token }

func (p *iocp) Release(r Ref, abort bool) { releaseNow(p, r, abort) }

func (p *iocp) Unregister(r Ref) {
	st := p.socks.get(r)
	if st.queued {
		p.unqueue(st)
	}
	st.pin.Unpin()
	if st.dg != nil {
		p.forgetDgram(st)
	}
	*st = sockState{}
	p.socks.remove(r)
}

// Wake posts an empty packet; Wait takes it for a wake-up.
func (p *iocp) Wake() { windows.PostQueuedCompletionStatus(p.port, 0, 0, nil) }

// WaitFD: a completion port is no descriptor a loop can watch.
func (p *iocp) WaitFD() (int, bool) { return 0, false }

func (p *iocp) Quiet() bool { return false }

func (p *iocp) Wait(batch []Completion, timeout time.Duration) (int, error) {
	p.arena.reset()
	p.round++
	p.retired.free()
	p.armPending()
	n := copy(batch, p.done.take(len(batch)))
	n = p.runReady(batch, n)
	if n == len(batch) {
		return n, nil
	}
	ms := uint32(0)
	if n == 0 && len(p.ready) == 0 && timeout != 0 {
		ms = windows.INFINITE
		if timeout > 0 {
			ms = uint32(min((timeout+time.Millisecond-1)/time.Millisecond, windows.INFINITE-1))
		}
	}
	if p.cancelAgain() {
		ms = min(ms, recancelEvery)
	}
	// Each packet makes at most one completion: take no more than fit.
	want := min(len(p.entries), len(batch)-n)
	var k uint32
	err := winapi.GetQueuedCompletionStatusEx(p.port, &p.entries[0], uint32(want), &k, ms, false)
	if err != nil {
		if err == windows.WAIT_TIMEOUT {
			return n, nil
		}
		return n, err
	}
	for i := range p.entries[:k] {
		e := &p.entries[i]
		if e.Overlapped == nil {
			continue // Wake
		}
		n = p.finish((*ioCtx)(unsafe.Pointer(e.Overlapped)), e.NumberOfBytesTransferred, batch, n)
	}
	clear(p.entries[:k])
	return n, nil
}

// finish turns one packet into at most one completion and returns the
// context to the pool.
func (p *iocp) finish(ctx *ioCtx, nbytes uint32, batch []Completion, n int) int {
	st := p.socks.match(int(ctx.slot), ctx.gen, ^uint32(0))
	if st == nil {
		// Unregistered with the operation outstanding: a broken rule, but
		// the accepted socket at least is not leaked.
		if ctx.op == ctxAccept && ctx.accepted != NoSock {
			windows.Closesocket(ctx.accepted)
		}
		p.releaseFirst(ctx)
		p.ctxs.put(ctx)
		return n
	}
	var err error
	if ctx.ov.Internal != 0 {
		err = opError(st.s, ctx)
	}
	switch ctx.op {
	case ctxAccept:
		return p.acceptDone(st, ctx, nbytes, err, batch, n)
	case ctxConnect:
		return p.connectDone(st, ctx, err, batch, n)
	case ctxProbe:
		return p.probeDone(st, ctx, err, batch, n)
	case ctxRecvFrom:
		return p.recvFromDone(st, ctx, nbytes, err, batch, n)
	case ctxSendTo:
		return p.sendToDone(st, ctx, err, batch, n)
	}
	st.sending, st.transmit = false, false
	st.pin.Unpin()
	p.ctxs.put(ctx)
	batch[n] = Completion{Op: OpSend, Token: st.token, N: int(nbytes), Err: err}
	return n + 1
}

// opError is the Winsock error of a failed operation (the packet carries
// only an NTSTATUS); an aborted operation was canceled.
func opError(s Sock, ctx *ioCtx) error {
	var n, flags uint32
	err := windows.WSAGetOverlappedResult(s, &ctx.ov, &n, false, &flags)
	if err == windows.ERROR_OPERATION_ABORTED {
		return ErrCanceled
	}
	return err
}

func (p *iocp) Close() error {
	p.ctxs.release()
	p.firstBufs.release()
	p.arena.free()
	p.retired.free()
	return windows.CloseHandle(p.port)
}
