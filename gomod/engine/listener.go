package engine

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// acceptRetry is how long a listener waits after an accept failed for want
// of descriptors or memory, instead of spinning on a socket it cannot take.
const acceptRetry = 100 * time.Millisecond

// Listener is a listening socket with Accepts() accepts kept posted. It
// belongs to one worker; accepted connections go round-robin to all.
type Listener struct {
	m          *Manager
	w          *worker
	fd         poller.Sock
	ref        poller.Ref // fd as its worker's port names it, once listening
	addr       netip.AddrPort
	unix       *unixListener // a Unix domain listener's name and file (unix.go); nil: TCP
	accepts    int
	sock       SockOptions                 // every accepted socket's too
	framing    Framing                     // every accepted connection's (never changed: shared)
	tls        atomic.Pointer[listenerTLS] // nil: plaintext (tls.go)
	proxy      *listenerProxy              // nil: no PROXY protocol header (proxy.go)
	closeAsked atomic.Bool
	taken      atomic.Bool   // its worker has run startListen
	done       chan struct{} // closed once the socket is closed

	// Owned by the worker.
	token       uint64
	outstanding int // accepts posted and not completed
	retrying    int // accepts to post again at retryAt
	retryAt     int64
	firstData   bool  // accepts wait for the first bytes (first_data.go)
	sweepEvery  int64 // ns between SweepAccepts, 0: never
	sweepAt     int64
	failing     bool // in an episode of failed accepts: logged once, until one succeeds
	closing     bool
}

// Addr is the address the listener is bound to (the port filled in);
// invalid for a Unix domain listener (see Path).
func (l *Listener) Addr() netip.AddrPort { return l.addr }

// String names the listener in logs: its address or path.
func (l *Listener) String() string {
	if l.unix != nil {
		return fmt.Sprintf("unix:%q", l.unix.name)
	}
	return l.addr.String()
}

// Accepts is the number of accepts the listener keeps posted.
func (l *Listener) Accepts() int { return l.accepts }

// Close stops accepting. The socket is closed by the listener's worker once
// its posted accepts have completed; Done says when. Connections the
// kernel had already completed (queued in the backlog, or taken by an
// accept as it was cancelled) are accepted and served first, not reset:
// their clients think them established. Idempotent.
func (l *Listener) Close() error {
	if l.closeAsked.Swap(true) {
		return nil
	}
	l.removeFile()
	l.w.enqueue(request{kind: reqCloseListener, v: l})
	return nil
}

// Done is closed once the listening socket is closed.
func (l *Listener) Done() <-chan struct{} { return l.done }

// Waiting reports whether connections wait in the listening socket's accept
// queue while no worker has taken the listener up yet: its manager was
// never started nor polled, so the kernel completes their handshakes and
// nobody serves them. False once a worker has the listener, and once it is
// closed. Bindings use it to warn about a listener nobody serves.
func (l *Listener) Waiting() bool {
	// Only the worker closes the socket, after taking the listener up: a
	// worker starting during the check can at worst make the answer stale.
	if l.taken.Load() || l.closeAsked.Load() {
		return false
	}
	return poller.AcceptReady(l.fd)
}

func (w *worker) startListen(l *Listener) {
	l.taken.Store(true)
	idx := freeSlot(&w.listeners)
	l.token = listenerBit | uint64(idx)
	if w.shutdown || l.closeAsked.Load() {
		if !w.shutdown {
			w.takeBacklog(l) // closed before it was served: its queue still is
		}
		w.closeListenSock(l)
		return
	}
	ref, err := w.p.Listen(l.fd, l.token)
	if err != nil {
		w.m.logf("listener %v: %v", l, err)
		w.closeListenSock(l)
		return
	}
	l.ref = ref
	w.listeners[idx] = l
	w.nlisteners++
	if l.firstData {
		w.startFirstData(l)
	}
	w.p.PostAccept(l.ref, l.accepts)
	l.outstanding = l.accepts
}

func (w *worker) acceptDone(cpl *poller.Completion) {
	idx := int(cpl.Token &^ listenerBit)
	if idx >= len(w.listeners) || w.listeners[idx] == nil {
		w.stats.stray.Add(1)
		return
	}
	l := w.listeners[idx]
	l.outstanding--
	if cpl.Err != nil {
		if cpl.Err != poller.ErrCanceled && !l.closing {
			// An error on one accept never closes the listener: post the
			// accept again after a pause (EMFILE would otherwise spin).
			w.stats.acceptErrors.Add(1)
			if !l.failing {
				// An episode (out of descriptors until some free up, say)
				// is logged and counted once, however many accepts fail
				// in it; the first accept that succeeds ends it.
				l.failing = true
				w.stats.acceptErrorEpisodes.Add(1)
				w.m.logf("listener %v: accept: %v; retrying every %v (logged once until an accept succeeds)",
					l, cpl.Err, acceptRetry)
			}
			if l.retrying == 0 {
				l.retryAt = w.now + int64(acceptRetry)
			}
			l.retrying++
		}
		w.settleListener(l)
		return
	}
	if l.closing {
		// Completed as the listener closed: its client thinks it
		// established, so it is served, not reset.
		w.m.accept(w, l, cpl.Sock, cpl.Peer, cpl.Data)
		w.settleListener(l)
		return
	}
	l.failing = false
	w.p.PostAccept(l.ref, 1)
	l.outstanding++
	w.m.accept(w, l, cpl.Sock, cpl.Peer, cpl.Data)
}

// retryAccepts re-posts accepts that failed for want of resources.
func (w *worker) retryAccepts() {
	for _, l := range w.listeners {
		if l != nil && l.retrying > 0 && !l.closing && w.now >= l.retryAt {
			w.p.PostAccept(l.ref, l.retrying)
			l.outstanding += l.retrying
			l.retrying = 0
		}
	}
}

func (w *worker) closeListener(l *Listener) {
	if l.closing || w.listeners[l.token&^listenerBit] != l {
		return
	}
	l.closing = true
	l.retrying = 0
	w.p.Cancel(l.ref)
	w.settleListener(l)
}

// settleListener closes the socket once a closing listener's last posted
// accept has completed.
func (w *worker) settleListener(l *Listener) {
	if !l.closing || l.outstanding > 0 {
		return
	}
	w.takeBacklog(l)
	w.p.Unregister(l.ref)
	w.listeners[l.token&^listenerBit] = nil
	w.nlisteners--
	w.closeListenSock(l)
}

// freeSlot is the index of a free (nil) entry of *list, one appended when
// none is: a worker's listeners and endpoints are named by their index.
func freeSlot[T any](list *[]*T) int {
	for i, x := range *list {
		if x == nil {
			return i
		}
	}
	*list = append(*list, nil)
	return len(*list) - 1
}

// maxBacklogTake bounds what one close takes from a backlog that clients
// keep filling.
const maxBacklogTake = 1 << 16

// takeBacklog accepts, just before a closing listener's socket is closed,
// the connections still queued in its backlog: the kernel completed their
// handshakes, so their clients think them established, and closing the
// socket would reset them. (With SO_REUSEPORT, a process that stops
// serving a port thus hands over no connection its peers' sockets could
// not take.) Not when the manager closes: they would be closed at once.
func (w *worker) takeBacklog(l *Listener) {
	for range maxBacklogTake {
		if w.m.closing.Load() {
			return
		}
		fd, peer, ok, err := poller.AcceptQueued(l.fd)
		if err != nil {
			w.m.logf("listener %v: taking the backlog before closing: %v", l, err)
			return
		}
		if !ok {
			return
		}
		w.m.accept(w, l, fd, peer, nil)
	}
}

func (w *worker) closeListenSock(l *Listener) {
	poller.CloseSock(l.fd)
	l.removeFile()
	w.m.forgetListener(l)
	close(l.done)
}
