package engine

import (
	"net/netip"
	"syscall"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// Connect starts an outbound connection to addr and returns it at once;
// EventConnect follows, or EventClose with the error (ErrConnectTimeout
// after timeout; zero means no timeout). Bytes sent before the connect
// completes are written once it does. With max_connections open (accepted
// and outbound together) it fails with ErrTooManyConnections. so, if
// given, are the socket's options (the default: SockOptions{}).
func (m *Manager) Connect(addr netip.AddrPort, timeout time.Duration, so ...SockOptions) (*Conn, error) {
	return m.connect(addr, timeout, nil, so)
}

func (m *Manager) connect(addr netip.AddrPort, timeout time.Duration, ct *clientTLS, so []SockOptions) (*Conn, error) {
	if !addr.IsValid() || addr.Port() == 0 {
		return nil, &OptionError{"address", addr, "must be an IP address and a port 1-65535"}
	}
	opts, err := outboundOptions(timeout, so)
	if err != nil {
		return nil, err
	}
	return m.outbound(timeout, ct, func() (*Conn, error) {
		fd, err := poller.NewConnectSocket(addr, &opts)
		if err != nil {
			return nil, err
		}
		return m.newConn(fd, addr, true), nil
	})
}

// outboundOptions checks a Connect's or ConnectHost's timeout and options.
func outboundOptions(timeout time.Duration, so []SockOptions) (SockOptions, error) {
	var opts SockOptions
	if timeout < 0 {
		return opts, &OptionError{"timeout", timeout.Seconds(), "must not be negative"}
	}
	if len(so) > 0 {
		opts = so[0]
	}
	return opts, checkSockOptions(&opts)
}

// outbound makes an outbound connection with open and queues its connect
// to its worker. Outbound connections count toward max_connections like
// accepted ones: over the cap the caller hears it now, nothing is opened.
func (m *Manager) outbound(timeout time.Duration, ct *clientTLS, open func() (*Conn, error)) (*Conn, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closing.Load() {
		return nil, ErrManagerClosed
	}
	if !m.reserveConn() {
		return nil, ErrTooManyConnections
	}
	c, err := open()
	if err != nil {
		m.nconns.Add(-1)
		return nil, err
	}
	c.announced = true
	if ct != nil {
		c.tlsp.Store(newClientTLS(c, ct))
	}
	if !m.table.add(c) {
		if c.fd != poller.NoSock {
			poller.CloseSock(c.fd)
		}
		m.nconns.Add(-1)
		return nil, syscall.EMFILE
	}
	if !c.w.enqueue(request{kind: reqConnect, c: c, t: int64(timeout)}) {
		m.drop(c)
		return nil, ErrManagerClosed
	}
	return c, nil
}

func (w *worker) startConnect(c *Conn, timeout int64) {
	w.conns.push(c)
	c.openedAt = w.now
	c.lastActive = w.now
	if w.shutdown {
		w.abort(c, ErrManagerClosed, true)
		return
	}
	if timeout > 0 {
		c.connectBy = w.now + timeout // the lookup of a ConnectHost included
		w.schedule(c)
	}
	if c.byName != nil && c.byName.resolving {
		return // applyResolved goes on (resolve.go)
	}
	if err := w.postConnect(c); err != nil {
		w.abort(c, err, false)
	}
}

// postConnect registers the connection's socket and posts its connect.
func (w *worker) postConnect(c *Conn) error {
	ref, err := w.p.Register(c.fd, c.token())
	if err != nil {
		return err
	}
	c.ref, c.registered = ref, true
	if c.unix != nil {
		return w.connectUnix(c)
	}
	done, err := w.p.PostConnect(c.ref, c.peer)
	switch {
	case err != nil:
		return err
	case done:
		w.connected(c)
	default:
		c.connecting = true
	}
	return nil
}

func (w *worker) connectDone(c *Conn, cpl *poller.Completion) {
	c.connecting = false
	switch {
	case cpl.Err == poller.ErrCanceled || c.state != stateConnecting:
		w.settle(c)
	case cpl.Err != nil:
		w.abort(c, cpl.Err, false)
	default:
		w.connected(c)
	}
}

func (w *worker) connected(c *Conn) {
	c.state = stateOpen
	c.connectBy = 0
	c.lastActive = w.now
	w.learnLocal(c)
	w.schedule(c)
	// The first receive is posted next round, once whoever took this
	// event has let the connection go (pollers.go).
	w.rearm = append(w.rearm, c)
	if c.tlsc() != nil {
		w.handshake(c) // announced once it succeeds
		return
	}
	w.announceConnect(c)
}

// announceConnect tells the application its connection is up, and does
// what waited for it: a pool's adoption, a close asked meanwhile, the
// bytes sent before.
func (w *worker) announceConnect(c *Conn) {
	w.stats.connected.Add(1)
	w.emit(Event{Kind: EventConnect, Conn: c})
	c.mu.Lock()
	req, pool := c.req, c.pool
	c.opened = true
	c.mu.Unlock()
	if pool != nil {
		pool.connected(c)
	}
	w.closeOrFlush(c, req)
}

// closeOrFlush goes on from a connection now up: a close asked meanwhile
// (req) closes it after what is queued, else what is queued is written.
func (w *worker) closeOrFlush(c *Conn, req closeReq) {
	if req == closeGraceful {
		w.closeGracefully(c)
	} else {
		w.flush(c)
	}
}
