// Package poller is the completion port an engine worker owns: one OS queue
// (an epoll instance, an io_uring or an IOCP handle) and the sockets
// associated with it for life.
//
// The contract is completion-based, the model of Windows I/O completion
// ports: the engine posts an operation (accept, connect, receive, send) on a
// socket and later harvests exactly one completion for it from Wait. IOCP and
// io_uring implement this natively; the epoll backend turns readiness into
// completions by doing the I/O itself inside Wait, on the caller's thread.
//
// Rules every backend keeps, and the engine relies on:
//
//   - Single issuer: Register, the Post calls, Cancel, Unregister and Wait
//     are called only by the thread that currently drives the worker (io_uring
//     requires it, and it removes the post-versus-close race). Wake is the one
//     call that is safe from any thread.
//   - A post that returns an error produces no completion: the caller treats
//     the operation as already over.
//   - A post that returns done=true completed at once and produces no
//     completion (epoll's direct write). io_uring and IOCP always complete
//     through the port.
//   - Cancel makes every outstanding operation of a socket complete exactly
//     once (with ErrCanceled unless it had already finished). Only after the
//     last of those completions may the socket be Unregistered and closed.
//   - Recv completions carry bytes in memory the poller owns, valid until the
//     next Wait; an idle socket holds no receive memory.
//   - Completions of one socket are delivered in the order they happened.
//
// Datagram (UDP) sockets are bound with BindDatagram and take PostRecvFrom
// and PostSendTo instead of PostRecv and PostSend (udp.go).
package poller

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Op is the kind of operation a completion finishes.
type Op uint8

const (
	OpAccept   Op = iota + 1 // a listener accepted a socket (Completion.Sock, Peer)
	OpConnect                // an outbound connect finished (Err says how)
	OpRecv                   // bytes arrived (Data); empty Data is the peer's end of stream
	OpSend                   // N bytes of a posted send were written
	OpRecvFrom               // a datagram arrived (Data, Peer); see ErrTruncated
	OpSendTo                 // N datagrams of a posted PostSendTo are done (Err: the first that failed)
)

// ErrCanceled ends an operation that Cancel stopped before it finished.
var ErrCanceled = errors.New("poller: operation canceled")

// ErrPortLost: a port set up for one driving thread (Config.FixedThread)
// was driven from another, as when that thread is gone: io_uring's single
// issuer accepts no other. Nothing more can be posted on the port or
// harvested from it; Wait returns this from then on, and the caller closes
// the port and its sockets without waiting for their completions.
var ErrPortLost = errors.New("poller: the port cannot be driven from this thread (it belongs to another)")

// Completion is one finished operation, harvested by Wait.
type Completion struct {
	Op    Op
	Token uint64         // the token the socket was registered with
	Sock  Sock           // OpAccept: the accepted socket, non-blocking, close-on-exec
	Peer  netip.AddrPort // OpAccept: the peer's address
	N     int            // OpSend: bytes written (may be fewer than posted)
	Data  []byte         // OpRecv: the bytes read; OpAccept: its first bytes (FirstData, Windows); valid until the next Wait
	Err   error          // nil, ErrCanceled, or the OS error (syscall.Errno)
}

// Config is how the engine will drive a port.
type Config struct {
	// FixedThread: every call but Wake comes from one OS thread for the
	// port's life (the first to use it). io_uring then runs as a single
	// issuer with deferred task work.
	FixedThread bool
}

// Poller is one completion port. See the package comment for the rules.
type Poller interface {
	// Register associates a connected (or connecting) socket with this port
	// for life; token comes back in every completion of the socket, and
	// every later call on it takes the Ref.
	Register(s Sock, token uint64) (Ref, error)
	// Listen associates a listening socket; accepts are posted with PostAccept.
	Listen(s Sock, token uint64) (Ref, error)
	// PostAccept posts n more accepts on a listening socket; each completes
	// once with an accepted socket or an error.
	PostAccept(r Ref, n int) error
	// FirstData makes the accepts of listening socket r wait for the
	// peer's first bytes, so that a peer that connects and stays silent is
	// not accepted: Linux holds it in the kernel (TCP_DEFER_ACCEPT, for
	// about timeout); Windows posts AcceptEx with a receive buffer, and
	// the bytes come with the accept (Completion.Data). sweep > 0: call
	// SweepAccepts that often, to drop peers silent for over timeout.
	FirstData(r Ref, timeout time.Duration) (sweep time.Duration, err error)
	// SweepAccepts drops the connections a first-data listener's posted
	// accepts hold whose peers have been silent for over its timeout;
	// those accepts are posted again. A no-op where FirstData's sweep is 0.
	SweepAccepts(r Ref)
	// PostConnect starts connecting the socket to addr. done=true:
	// connected at once.
	PostConnect(r Ref, addr netip.AddrPort) (done bool, err error)
	// PostRecv posts one receive. max bounds what the backend reads from
	// the socket beyond what was delivered: one read of at most max bytes
	// (epoll), or read-ahead of about max bytes in provided buffers, a
	// completion carrying at most one buffer (io_uring). Past that the
	// socket is not read, and TCP pushes back on the peer.
	PostRecv(r Ref, max int) error
	// PostSend posts one send of bufs (gathered in order). done=true: n bytes
	// were written at once (n may be less than the total; post the rest).
	// The bytes must stay unchanged until the completion; the slice of
	// slices itself may be reused as soon as the call returns.
	PostSend(r Ref, bufs [][]byte) (n int, done bool, err error)
	// PostSendFile posts one send of n (> 0) bytes of file f from offset
	// off, which go from the file to the socket without passing through
	// user space: sendfile(2) (epoll; io_uring, on the driving thread once
	// the socket can take bytes) or TransmitFile (IOCP). It completes as
	// PostSend does (OpSend); N may be less than n, and is 0 when the file
	// ends before off. An error that SendFileRefused accepts means the
	// kernel will not do it for this file or socket: the caller copies
	// the bytes and uses PostSend instead. f stays open until the
	// completion.
	PostSendFile(r Ref, f File, off int64, n int) (written int, done bool, err error)
	// BindDatagram associates a datagram socket (OpenUDP); each receive
	// takes one datagram of up to size bytes (a longer one: ErrTruncated),
	// and at most slots receives are outstanding (epoll and IOCP keep that
	// many buffers for the socket; io_uring takes them from a ring).
	BindDatagram(s Sock, token uint64, size, slots int) (Ref, error)
	// PostRecvFrom posts n more datagram receives (at most the slots
	// BindDatagram was given are outstanding); each completes once, with
	// one datagram (OpRecvFrom). The backend receives many in one system
	// call or submission: recvmmsg (epoll), one multishot RECVMSG from a
	// buffer ring (io_uring), a WSARecvFrom per slot (IOCP).
	PostRecvFrom(r Ref, n int) error
	// PostSendTo posts the send of msgs (at most MaxSendTo of them), each
	// a datagram of its own; the slice may be reused once the call
	// returns, the bytes not before the completion. done=true: the first
	// n were sent at once (sendmmsg), err then the first that failed
	// (dropped, and counted in n); done=false with err nil: one OpSendTo
	// follows, N the datagrams done, Err the first failure among them.
	PostSendTo(r Ref, msgs []Datagram) (n int, done bool, err error)
	// Cancel completes every outstanding operation of the socket (see
	// ErrCanceled).
	Cancel(r Ref)
	// Retoken makes token the one the socket's later completions carry: a
	// socket raced for a connection becomes the connection's.
	Retoken(r Ref, token uint64)
	// Unregister forgets the socket; the caller closes it afterwards.
	Unregister(r Ref)
	// Release forgets the socket and closes it (abort: with a reset,
	// SO_LINGER 0).
	// The close may be made in the next Wait, or by Close at the latest:
	// io_uring submits it with the round's other work, no system call of
	// its own. Closing a listener is left to the caller, whose next bind
	// of the port must not find it still open.
	Release(r Ref, abort bool)
	// Wait harvests up to len(batch) completions. It blocks up to timeout
	// (negative: no limit, zero: do not block) when none is ready, and returns
	// early, possibly with none, after Wake.
	Wait(batch []Completion, timeout time.Duration) (int, error)
	// Wake makes a blocked Wait, or else the next one, return promptly. It is
	// safe from any thread and costs a system call: callers avoid waking a
	// port that is not asleep.
	Wake()
	// WaitFD is a descriptor that is readable while Wait has completions
	// to harvest and after Wake, for a caller that watches the port from
	// an event loop of its own and calls Wait with a zero timeout when it
	// turns readable (Wait then submits what was posted, as any Wait
	// does). ok is false where there is none: IOCP, and an io_uring with
	// deferred task work, whose completions are only made by its issuer's
	// next Wait.
	WaitFD() (fd int, ok bool)
	// Quiet reports, after a Wait, that the port holds nothing for the
	// next one to do at once (completions kept back, receives to arm
	// again): only the descriptor's readiness can bring it work. Where
	// WaitFD has none, false.
	Quiet() bool
	// Close releases the port. Every socket must be unregistered first.
	Close() error
	// Name is the backend's name, as in stats()["backend"].
	Name() string
}

// Backends lists the backends that work here, preferred first.
func Backends() []string {
	var out []string
	for _, b := range backends {
		if b.probe == nil || b.probe() == nil {
			out = append(out, b.name)
		}
	}
	return out
}

// Open opens a port of the named backend. "auto" takes the first backend
// that works here; then skipped says why the ones before it did not.
func Open(name string, cfg Config) (p Poller, skipped error, err error) {
	for _, b := range backends {
		if name != "auto" && name != b.name {
			continue
		}
		if b.probe != nil {
			if err := b.probe(); err != nil {
				if name == "auto" {
					skipped = err
					continue
				}
				return nil, nil, err
			}
		}
		p, err := b.open(cfg)
		return p, skipped, err
	}
	return nil, nil, &UnknownBackendError{Name: name}
}

// releaseNow is Release for the backends that close at once: forget the
// socket, then close it.
func releaseNow(p Poller, r Ref, abort bool) {
	p.Unregister(r)
	closeSock(r.s, abort)
}

// closeSock closes s now, with a reset if abort.
func closeSock(s Sock, abort bool) {
	if abort {
		AbortSock(s)
	} else {
		CloseSock(s)
	}
}

type backend struct {
	name  string
	probe func() error // nil: always available
	open  func(Config) (Poller, error)
}

// UnknownBackendError names a backend this OS does not offer.
type UnknownBackendError struct{ Name string }

func (e *UnknownBackendError) Error() string {
	names := make([]string, len(backends))
	for i, b := range backends {
		names[i] = b.name
	}
	return "poller: unknown backend " + strconv.Quote(e.Name) +
		" (available: auto, " + strings.Join(names, ", ") + ")"
}
