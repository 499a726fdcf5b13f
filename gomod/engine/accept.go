package engine

import (
	"bytes"
	"net/netip"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// accept takes a socket that listener l's worker w accepted and hands it to
// the next worker round-robin; that worker owns it for life.
func (m *Manager) accept(w *worker, l *Listener, fd poller.Sock, peer netip.AddrPort, first []byte) {
	if m.closing.Load() {
		poller.CloseSock(fd)
		return
	}
	if err := poller.ApplyAccepted(fd, &l.sock); err != nil {
		m.logf("listener %v: accepted socket options: %v", l, err)
		poller.AbortSock(fd)
		return
	}
	if !m.reserveConn() {
		// Over max_connections: accepted and closed at once, never announced.
		poller.AbortSock(fd)
		m.rejected.Add(1)
		return
	}
	c := m.newConn(fd, peer, false)
	c.listener = l
	if l.unix != nil {
		c.unix = &unixNames{local: l.unix.name, peer: poller.UnixPeerName(fd)}
	}
	if len(first) > 0 {
		c.first = bytes.Clone(first) // first is the poller's until its next Wait
	}
	if l.framing != nil {
		c.framing, c.fr = l.framing, newFramer(l.framing)
	}
	if !m.table.add(c) {
		poller.AbortSock(fd)
		m.nconns.Add(-1)
		m.rejected.Add(1)
		return
	}
	if c.w == w {
		w.adopt(c)
	} else if !c.w.enqueue(request{kind: reqAdopt, c: c}) {
		m.drop(c)
	}
}

// reserveConn counts a new connection unless that would pass the cap.
func (m *Manager) reserveConn() bool {
	for {
		n := m.nconns.Load()
		if m.opts.maxConns > 0 && n >= int64(m.opts.maxConns) {
			return false
		}
		if m.nconns.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (m *Manager) newConn(fd poller.Sock, peer netip.AddrPort, outbound bool) *Conn {
	return &Conn{
		m:        m,
		w:        m.pickWorker(),
		fd:       fd,
		peer:     peer,
		outbound: outbound,
		heapIdx:  -1,
		state:    stateConnecting,
	}
}

// drop closes a connection the application never saw.
func (m *Manager) drop(c *Conn) {
	c.mu.Lock()
	c.freed = true
	c.mu.Unlock()
	if c.fd != poller.NoSock {
		poller.CloseSock(c.fd)
	}
	m.table.remove(c)
	m.nconns.Add(-1)
}

// adopt makes an accepted connection live on w and announces it.
func (w *worker) adopt(c *Conn) {
	if w.shutdown {
		w.m.drop(c)
		return
	}
	ref, err := w.p.Register(c.fd, c.token())
	if err != nil {
		w.m.logf("register accepted socket: %v", err)
		w.m.drop(c)
		return
	}
	c.ref = ref
	c.registered = true
	c.state = stateOpen
	c.mu.Lock()
	c.opened = true
	c.mu.Unlock()
	c.openedAt = w.now
	c.lastActive = w.now
	w.learnLocal(c)
	w.conns.push(c)
	if lp := c.listener.proxy; lp != nil {
		if !w.startProxy(c, lp) {
			return
		}
		w.schedule(c) // the header's deadline
	} else {
		w.schedule(c)
		w.begin(c)
	}
	w.deliverFirst(c)
	// The first receive is posted next round, once whoever took this
	// event has let the connection go (pollers.go).
	w.rearm = append(w.rearm, c)
}

// begin starts an accepted connection's life for the application: its TLS
// handshake, or its announcement.
func (w *worker) begin(c *Conn) {
	if lt := c.listener.tls.Load(); lt != nil {
		w.startTLS(c, lt) // announced once its handshake succeeds
	} else {
		w.announce(c)
	}
}

// announce tells the application of an accepted connection.
func (w *worker) announce(c *Conn) {
	c.announced = true
	w.stats.accepted.Add(1)
	w.emit(Event{Kind: EventAccept, Conn: c})
}

// learnLocal records the connection's own address before it is announced:
// the listener's when it is a specific one, else the socket's. Done here,
// on the worker, so that Local never makes a system call under c.mu (a
// Python caller would wait for it holding the GIL).
func (w *worker) learnLocal(c *Conn) {
	if c.unix != nil {
		return // named when made (accept, connectUnix)
	}
	var a netip.AddrPort
	if c.listener != nil && !c.listener.addr.Addr().IsUnspecified() {
		a = c.listener.addr
	} else if got, err := poller.LocalAddr(c.fd); err == nil && got.Port() != 0 {
		a = got
	}
	c.mu.Lock()
	c.local = a
	c.mu.Unlock()
}
