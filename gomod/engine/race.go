package engine

import (
	"net/netip"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// A ConnectHost races its addresses as RFC 8305 section 5 says: one attempt
// per address in eyeballsOrder, the next started when the ones in flight
// have not connected within attemptDelay, or at once when one fails; the
// first to connect wins and the others are canceled. So an address that
// never answers (a dead IPv6 route, a black hole) costs attemptDelay, not
// the connect timeout.
//
// Each attempt is a socket of its own, registered under a token of the
// worker's attempts (raceBit); the winner's socket is retokened to the
// connection's, which owns it from then on. Until then the connection has
// no socket, and it ends only after its last attempt's completion.

// attemptDelay is RFC 8305's recommended Connection Attempt Delay.
const attemptDelay = 250 * time.Millisecond

// attempt is one address being connected to for a connection.
type attempt struct {
	c        *Conn
	idx      int // in worker.attempts, its token's low bits
	fd       poller.Sock
	ref      poller.Ref
	addr     netip.AddrPort
	canceled bool
}

// startAttempt connects to the connection's next address: the first that
// gets a socket and a posted connect. With none left and none in flight,
// the connection ends with the last error.
func (w *worker) startAttempt(c *Conn) {
	bn := c.byName
	bn.nextAt = 0
	for len(bn.addrs) > 0 {
		addr := bn.addrs[0]
		bn.addrs = bn.addrs[1:]
		a, done, err := w.attemptTo(c, addr)
		if err != nil {
			bn.lastErr = err
			continue
		}
		if done {
			w.won(a)
			return
		}
		if len(bn.addrs) > 0 {
			bn.nextAt = w.now + int64(attemptDelay)
			w.schedule(c)
		}
		return
	}
	if len(bn.racing) == 0 {
		w.abort(c, bn.lastErr, false)
	}
}

// attemptTo opens a socket for addr and posts its connect; done: it
// connected at once.
func (w *worker) attemptTo(c *Conn, addr netip.AddrPort) (a *attempt, done bool, err error) {
	fd, err := poller.NewConnectSocket(addr, &c.byName.sock)
	if err != nil {
		return nil, false, err
	}
	a = &attempt{c: c, fd: fd, addr: addr}
	if n := len(w.freeAttempts); n > 0 {
		a.idx = w.freeAttempts[n-1]
		w.freeAttempts = w.freeAttempts[:n-1]
		w.attempts[a.idx] = a
	} else {
		a.idx = len(w.attempts)
		w.attempts = append(w.attempts, a)
	}
	if a.ref, err = w.p.Register(fd, raceBit|uint64(a.idx)); err != nil {
		poller.CloseSock(fd)
		w.forget(a)
		return nil, false, err
	}
	if done, err = w.p.PostConnect(a.ref, addr); err != nil {
		w.p.Release(a.ref, true)
		w.forget(a)
		return nil, false, err
	}
	c.byName.racing = append(c.byName.racing, a)
	return a, done, nil
}

// attemptDone takes an attempt's connect completion.
func (w *worker) attemptDone(cpl *poller.Completion) {
	idx := int(cpl.Token &^ raceBit)
	if idx >= len(w.attempts) || w.attempts[idx] == nil {
		w.stats.stray.Add(1)
		return
	}
	a := w.attempts[idx]
	c := a.c
	if cpl.Err == nil && c.state == stateConnecting {
		w.won(a)
		return
	}
	w.drop(a)
	switch {
	case c.state != stateConnecting:
		w.settle(c) // lost the race, or the connection ended meanwhile
	default:
		if cpl.Err != poller.ErrCanceled {
			c.byName.lastErr = cpl.Err
		}
		w.startAttempt(c) // a failed address: the next one now
	}
}

// won makes a's socket the connection's, and cancels the other attempts.
func (w *worker) won(a *attempt) {
	c, bn := a.c, a.c.byName
	w.unrace(a)
	w.cancelAttempts(c)
	bn.addrs, bn.nextAt = nil, 0
	w.p.Retoken(a.ref, c.token())
	c.mu.Lock() // withSock reads fd under the lock
	c.fd = a.fd
	c.mu.Unlock()
	c.ref, c.registered, c.peer = a.ref, true, a.addr
	w.connected(c)
}

// cancelAttempts cancels the connection's attempts in flight; each one's
// completion then drops it.
func (w *worker) cancelAttempts(c *Conn) {
	if c.byName == nil {
		return
	}
	for _, a := range c.byName.racing {
		if !a.canceled {
			a.canceled = true
			w.p.Cancel(a.ref)
		}
	}
}

// drop closes an attempt that lost or failed.
func (w *worker) drop(a *attempt) {
	w.unrace(a)
	w.p.Release(a.ref, true)
}

// unrace takes a off its connection's attempts and the worker's.
func (w *worker) unrace(a *attempt) {
	bn := a.c.byName
	for i, o := range bn.racing {
		if o == a {
			bn.racing = append(bn.racing[:i], bn.racing[i+1:]...)
			break
		}
	}
	w.forget(a)
}

func (w *worker) forget(a *attempt) {
	w.attempts[a.idx] = nil
	w.freeAttempts = append(w.freeAttempts, a.idx)
}

// nextAttemptDue starts the next address once attemptDelay has passed
// without a connection; false when it was not yet due.
func (w *worker) nextAttemptDue(c *Conn) bool {
	if c.state != stateConnecting || c.byName == nil || c.byName.nextAt == 0 || w.now < c.byName.nextAt ||
		c.connectBy > 0 && w.now >= c.connectBy { // timed out: fire ends it instead
		return false
	}
	w.startAttempt(c)
	return true
}

// closeAttemptsLost closes the sockets of c's attempts in flight when the
// port is lost (lost.go): their completions will never come.
func (w *worker) closeAttemptsLost(c *Conn) {
	if c.byName == nil {
		return
	}
	for _, a := range c.byName.racing {
		poller.AbortSock(a.fd)
		w.forget(a)
	}
	c.byName.racing = nil
}
