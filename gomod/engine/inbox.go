package engine

import (
	"sync"
	"sync/atomic"
)

// reqKind is work another thread hands to a worker. Every post on a socket
// is made by its worker (the single-issuer rule of the poller), so other
// threads ask through the worker's inbox.
type reqKind uint8

const (
	reqFlush         reqKind = iota + 1 // write what Send queued
	reqClose                            // Conn.Close
	reqAbort                            // Conn.Abort
	reqResume                           // Conn.ResumeReading
	reqAdopt                            // a connection accepted by another worker
	reqConnect                          // Manager.Connect
	reqListen                           // Manager.Listen
	reqCloseListener                    // Listener.Close
	reqPost                             // Manager.Post
	reqShutdown                         // Manager.Shutdown
	reqRelease                          // Manager.ReleasePoller
	reqTimer                            // Manager.CallLater, Conn.CallLater
	reqIdleTimeout                      // Conn.SetIdleTimeout
	reqResolved                         // a ConnectHost's lookup is done
	reqFraming                          // Conn.SetFraming
	reqTLSReady                         // a TLS handshake ended (tls.go)
	reqStartTLS                         // Conn.StartTLS (tls_upgrade.go)
	reqBindUDP                          // Manager.BindUDP (udp.go)
	reqFlushUDP                         // send what Endpoint.SendTo queued
	reqCloseUDP                         // Endpoint.Close
)

// request is kept small (40 bytes): a flood of sends, posts or timers
// from other threads queues one each.
type request struct {
	kind reqKind
	c    *Conn
	v    any   // reqListen, reqCloseListener: the *Listener; reqPost: the value; reqTimer: the *Timer; reqFraming: the Framing
	t    int64 // reqConnect: timeout; reqShutdown: deadline (manager clock)
}

type inbox struct {
	mu      sync.Mutex
	reqs    []request
	spare   []request
	quit    bool         // the worker is gone: nothing more is taken
	pending atomic.Int32 // len(reqs), readable without the lock
}

// enqueue hands r to w and wakes w if it sleeps. It returns false, taking
// nothing, once the worker has quit.
//
// The wake is paired with poll: enqueue stores pending, then loads
// sleeping; poll stores sleeping, then loads pending. One of the two sees
// the other, so a request is never left behind a sleeping worker, and a
// worker that is running (dispatching the batch that made this send, say)
// costs no system call.
func (w *worker) enqueue(r request) bool {
	in := &w.inbox
	in.mu.Lock()
	if in.quit {
		in.mu.Unlock()
		return false
	}
	in.reqs = append(in.reqs, r)
	first := in.pending.Add(1) == 1
	in.mu.Unlock()
	if first && w.sleeping.Load() {
		w.p.Wake()
	}
	return true
}

// inboxRound bounds the requests one round applies: a flood of posts or
// sends from other threads cannot starve the worker's own I/O. What is
// left waits for the next round, which then does not block.
const inboxRound = 1024

// inboxKeep is the most requests an emptied inbox keeps room for.
const inboxKeep = 4096

// take returns the oldest queued requests, at most max; the slice is
// valid until the next take.
func (in *inbox) take(max int) []request {
	if in.pending.Load() == 0 {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	reqs := in.reqs
	if len(reqs) > max {
		out := append(in.spare[:0], reqs[:max]...)
		n := copy(reqs, reqs[max:])
		clear(reqs[n:])
		in.reqs, in.spare = reqs[:n], out
		in.pending.Store(int32(n))
		return out
	}
	in.reqs = in.spare[:0]
	in.spare = reqs
	in.pending.Store(0)
	return reqs
}

// done is given back what take returned, once it is applied. A flood's
// buffer is let go now rather than at the next take, which may be long in
// coming on an idle worker.
func (in *inbox) done(reqs []request) {
	clear(reqs)
	if cap(reqs) <= inboxKeep {
		return
	}
	in.mu.Lock()
	if cap(in.spare) > inboxKeep {
		in.spare = nil
	}
	in.mu.Unlock()
}

// close marks the inbox gone and returns what was still queued.
func (in *inbox) close() []request {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.quit = true
	reqs := in.reqs
	in.reqs = nil
	in.pending.Store(0)
	return reqs
}
