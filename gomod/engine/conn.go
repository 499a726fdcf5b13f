package engine

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// connState is the life of a connection, advanced only by its worker.
type connState uint8

const (
	stateConnecting connState = iota // outbound, connect posted
	stateOpen
	stateClosing   // close(): flushing what is pending, then closing
	stateCanceling // the outstanding operations are being canceled
	stateClosed    // resources freed; on_close delivered
)

// closeReq is what the application asked for; set from any thread.
type closeReq uint8

const (
	closeNone closeReq = iota
	closeGraceful
	closeAbort
)

// Conn is one TCP connection. It belongs to exactly one worker for its
// life, so its events come in order and never two at once. Send, Close,
// Abort, ShutdownWrite, PauseReading and ResumeReading are safe from any
// goroutine or thread.
type Conn struct {
	m        *Manager
	w        *worker
	id       uint64
	slot     uint32
	fd       poller.Sock
	ref      poller.Ref // fd as its worker's port names it, once registered
	peer     netip.AddrPort
	unix     *unixNames // a Unix domain connection's names (unix.go); nil: TCP
	listener *Listener  // nil for outbound connections
	first    []byte     // the bytes that came with its accept (first_data.go), until adopted
	outbound bool
	tlsp     atomic.Pointer[tlsConn] // nil: plaintext (tls.go); set once, before it is shared or by StartTLS

	// Context is the application's; the engine never touches it.
	Context any

	// sockMu is read-held by other threads' socket option calls and SendNow
	// writes, written by finalize around closing the socket (sockopt.go).
	sockMu sync.RWMutex
	// wroteAt is when SendNow last wrote (m.clock()): activity for the
	// idle timeout, which the worker folds into lastActive (fire).
	wroteAt atomic.Int64

	mu          sync.Mutex // guards the fields up to the blank line
	sendq       sendQueue  // bytes and file ranges (sendfile.go)
	req         closeReq
	writeShut   bool        // ShutdownWrite asked: no more sends
	paused      atomic.Bool // PauseReading asked (written under mu, read without it)
	flushQueued bool        // a flush request is in the worker's inbox
	sending     bool        // a send is posted (one outstanding send per socket)
	drainArmed  bool        // OnDrain is owed when pending falls to the low watermark
	freed       bool
	timers      []*Timer // pending CallLater timers (timer.go)
	local       netip.AddrPort
	proxied     netip.AddrPort // the load balancer's, when a PROXY header named peer: set before announced
	framing     Framing        // what SendFrame uses (framing_conn.go)
	pool        *Pool          // the Pool that adopted it, nil: none (pool.go)
	opened      bool           // connected (outbound) or accepted: for a Pool adopting it late, and SendNow
	finalErr    error          // closeErr, once freed: for a Pool adopting it late

	// Owned by the worker: no lock.
	state       connState
	registered  bool
	recvPosted  bool // one outstanding receive per socket
	connecting  bool
	announced   bool // the application knows the connection: on_close is owed
	gotData     bool
	proxyw      *proxyWait    // a PROXY listener's connection waiting for its header (proxy.go)
	byName      *byName       // a ConnectHost's lookup and addresses (resolve.go); nil otherwise
	ownIdle     bool          // idleTimeout, not the manager's (SetIdleTimeout)
	idleTimeout time.Duration // when ownIdle; 0: none
	eof         bool
	eofTold     bool
	shutDone    bool // FIN sent after ShutdownWrite
	rst         bool // close with a reset (abort, timeouts)
	closeErr    error
	held        byteQueue // received while paused: counts against recv_buffer_limit
	fr          *framer   // the incoming bytes' framing, nil: none (framer.go)
	frameErr    error     // a bad frame came: the connection closes next round
	openedAt    int64
	lastActive  int64
	connectBy   int64 // connect deadline, 0: none
	closingAt   int64 // when a graceful close began, 0: none (close_timeout runs from it)
	dropped     int   // bytes read and dropped since the close began
	deadline    int64 // the timer heap's key, 0: not in the heap
	heapIdx     int
	prev, next  *Conn // the worker's list of its connections
	connectAddr netip.AddrPort
	holder      uint64  // the poller that took its last events, 0: none (pollers.go)
	deferred    []Event // its events that wait while a poller holds it
}

// ID is the connection's id: unique in its manager for the process's life.
func (c *Conn) ID() uint64 { return c.id }

// Slot is the connection's index in the manager's table; with the id it is
// the reference bindings hold (see Manager.Lookup).
func (c *Conn) Slot() uint32 { return c.slot }

// Manager is the manager the connection belongs to.
func (c *Conn) Manager() *Manager { return c.m }

// Outbound reports whether the connection came from Connect.
func (c *Conn) Outbound() bool { return c.outbound }

// OpenedAt is when the engine took the connection on: accepted (the
// accept_timeout counts from here) or, outbound, when its connect was
// started. Set before OnOpen or OnConnect; it never changes after.
func (c *Conn) OpenedAt() time.Time { return c.m.epoch.Add(time.Duration(c.openedAt)) }

// Peer is the address of the other end; for a ConnectHost, the address
// being tried, valid to other goroutines once EventConnect came.
func (c *Conn) Peer() netip.AddrPort { return c.peer }

// Local is this end's address: known once accepted or connected, when the
// worker records it (learnLocal), so that reading it makes no system call
// under c.mu.
func (c *Conn) Local() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.local
}

// Send queues p to be written, in order, after everything sent before it.
// One call's bytes are never interleaved with another's. It fails with
// ErrClosed once the connection is closing or its write side is shut down,
// and with ErrBufferFull, queueing nothing, when the pending bytes would
// pass the send buffer limit.
func (c *Conn) Send(p []byte) error { return c.sendParts(nil, p, nil) }

// sendParts queues a, p and z together, as one send.
func (c *Conn) sendParts(a, p, z []byte) error {
	if c.tlsc() != nil {
		return c.sendTLS(a, p, z)
	}
	c.mu.Lock()
	return c.queueLocked(a, p, z)
}

// queueLocked is sendParts for plain connections, entered with c.mu held
// (it unlocks it).
func (c *Conn) queueLocked(a, p, z []byte) error {
	if c.req != closeNone || c.writeShut || c.freed {
		c.mu.Unlock()
		return ErrClosed
	}
	n := len(a) + len(p) + len(z)
	if n == 0 {
		c.mu.Unlock()
		return nil
	}
	o := &c.m.opts
	if c.sendq.len()+n > o.sendLimit {
		c.drainArmed = true
		c.mu.Unlock()
		return ErrBufferFull
	}
	c.sendq.append(a)
	c.sendq.append(p)
	c.sendq.append(z)
	c.queuedLocked(n)
	return nil
}

// queuedLocked ends a send of n bytes appended to c.sendq, entered with
// c.mu held (it unlocks it): the drain watermark, the count, and a flush
// asked of the worker unless one is queued or a send in flight flushes.
func (c *Conn) queuedLocked(n int) {
	if c.sendq.len() > c.m.lowWater {
		c.drainArmed = true
	}
	wake := !c.flushQueued && !c.sending
	if wake {
		c.flushQueued = true
	}
	c.mu.Unlock()
	c.m.pendingSend.Add(int64(n))
	if wake {
		c.w.enqueue(request{kind: reqFlush, c: c})
	}
}

// Pending is the number of bytes queued and not yet written.
func (c *Conn) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sendq.len()
}

// Closed reports whether the connection is closing or closed.
func (c *Conn) Closed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.req != closeNone || c.freed
}

// Close closes the connection after its pending bytes are written.
// Idempotent; never fails on a connection already closing.
func (c *Conn) Close() error { return c.requestClose(closeGraceful) }

// Abort resets the connection at once, dropping pending bytes. Idempotent.
func (c *Conn) Abort() error { return c.requestClose(closeAbort) }

func (c *Conn) requestClose(r closeReq) error {
	c.mu.Lock()
	if c.freed || c.req >= r {
		c.mu.Unlock()
		return nil
	}
	c.req = r
	c.mu.Unlock()
	kind := reqClose
	if r == closeAbort {
		kind = reqAbort
	}
	c.w.enqueue(request{kind: kind, c: c})
	return nil
}

// ShutdownWrite half-closes: the peer gets FIN once pending bytes are
// written; receiving goes on. Later sends fail with ErrClosed.
func (c *Conn) ShutdownWrite() error {
	if c.tlsc() != nil && !c.Closed() {
		c.tlsClosing() // close_notify, queued ahead of the FIN
	}
	c.mu.Lock()
	if c.req != closeNone || c.freed {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.writeShut {
		c.mu.Unlock()
		return nil
	}
	c.writeShut = true
	wake := !c.flushQueued
	c.flushQueued = true
	c.mu.Unlock()
	if wake {
		c.w.enqueue(request{kind: reqFlush, c: c})
	}
	return nil
}

// PauseReading stops delivering received data; the worker stops reading the
// socket, so the peer's TCP window closes. Data already harvested by the
// worker's current round may still arrive.
func (c *Conn) PauseReading() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.req != closeNone || c.freed {
		return ErrClosed
	}
	if !c.paused.Load() {
		c.paused.Store(true)
		c.m.pausedReading.Add(1)
	}
	return nil
}

// ResumeReading undoes PauseReading: held data is delivered first.
func (c *Conn) ResumeReading() error {
	c.mu.Lock()
	if c.req != closeNone || c.freed {
		c.mu.Unlock()
		return ErrClosed
	}
	was := c.paused.Swap(false)
	c.mu.Unlock()
	if was {
		c.m.pausedReading.Add(-1)
		c.w.enqueue(request{kind: reqResume, c: c})
	}
	return nil
}

// isPaused is read by the worker on every receive: an atomic, not c.mu.
func (c *Conn) isPaused() bool { return c.paused.Load() }
