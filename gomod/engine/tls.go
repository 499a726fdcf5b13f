package engine

import (
	"crypto/tls"
	"errors"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/tlsio"
)

// DefaultHandshakeTimeout bounds a TLS handshake when the listener sets
// no timeout of its own.
const DefaultHandshakeTimeout = 10 * time.Second

// listenerTLS is what a TLS listener gives each connection it accepts.
// A Listener holds it by an atomic pointer, so ReloadTLS swaps it while
// accepts go on; a connection keeps the one it started with.
type listenerTLS struct {
	cfg     *tls.Config
	timeout time.Duration
}

// WithTLS makes the listener speak TLS with cfg (its Certificates or
// GetCertificate set): every accepted connection's handshake runs first,
// within handshakeTimeout (0: DefaultHandshakeTimeout), and only a
// connection whose handshake succeeded is announced (EventAccept). One
// that fails is closed (after the alert saying why), never announced, and
// counted in
// Stats.TLSHandshakeErrors. Received bytes are then delivered, and Send
// takes, plaintext; the engine reads and writes the records.
func WithTLS(cfg *tls.Config, handshakeTimeout time.Duration) ListenOption {
	return func(o *listenOptions) error {
		t, err := newListenerTLS(cfg, handshakeTimeout)
		o.tls = t
		return err
	}
}

func newListenerTLS(cfg *tls.Config, timeout time.Duration) (*listenerTLS, error) {
	switch {
	case cfg == nil:
		return nil, &OptionError{"tls", cfg, "must be a *tls.Config"}
	case len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil:
		return nil, &OptionError{"tls", "no certificate", "a server needs Certificates or GetCertificate"}
	case timeout < 0:
		return nil, &OptionError{"handshake_timeout", timeout, "must not be negative"}
	case timeout == 0:
		timeout = DefaultHandshakeTimeout
	}
	return &listenerTLS{cfg: cfg.Clone(), timeout: timeout}, nil
}

// ReloadTLS makes the listener's new handshakes use cfg (rotated
// certificates, say); connections already accepted keep theirs. The
// handshake timeout stays. It fails on a listener without TLS.
func (l *Listener) ReloadTLS(cfg *tls.Config) error {
	old := l.tls.Load()
	if old == nil {
		return &OptionError{"tls", "reload", "the listener was not made with TLS"}
	}
	t, err := newListenerTLS(cfg, old.timeout)
	if err != nil {
		return err
	}
	l.tls.Store(t)
	return nil
}

// tlsConn is a TLS connection's session. The pointer is set before the
// connection is shared and never changes.
type tlsConn struct {
	s       *tlsio.Session
	timeout time.Duration // the handshake's
	err     error         // the handshake's, written before reqTLSReady is queued
	upgrade bool          // StartTLS made it: the connection was announced before

	// wmu orders the application's sends: those made before the handshake
	// ended wait in early (an outbound connection's), and are encrypted
	// before any made after.
	wmu      sync.Mutex
	writable bool
	early    byteQueue

	// Its worker's.
	done bool // the handshake ended (up: it succeeded)
	more bool // decrypted plaintext may wait in the session (the arena ran short)
}

// up reports whether the handshake succeeded. err is the handshake
// goroutine's, written before reqTLSReady; done, set when the worker takes
// that, is read first.
func (t *tlsConn) up() bool { return t.done && t.err == nil }

// TLSError is why TLS ended a connection: its handshake failed (the
// peer's certificate not trusted, no version or cipher in common, the
// peer's alert, the handshake timeout: an outbound connection's
// EventClose carries it), or a record was broken or an alert came later.
type TLSError struct{ Err error }

func (e *TLSError) Error() string { return "TLS: " + e.Err.Error() }
func (e *TLSError) Unwrap() error { return e.Err }

// TLS is the connection's TLS state (version, cipher suite, ALPN, the
// peer's certificates), or nil for a plaintext connection. Valid once the
// connection is announced.
func (c *Conn) TLS() *tls.ConnectionState {
	t := c.tlsc()
	if t == nil || !t.s.Ready() {
		return nil
	}
	st := t.s.State()
	return &st
}

// tlsc is c's TLS session, nil for plaintext. An atomic load: StartTLS
// sets it on a connection other threads already use.
func (c *Conn) tlsc() *tlsConn { return c.tlsp.Load() }

// handshakes is the manager's pool for TLS handshakes, made on first use:
// crypto/tls handshakes are blocking code, so each takes a goroutine, at
// most twice the cores at once; the rest wait their turn (their timeout
// runs meanwhile).
func (m *Manager) handshakes() *tlsio.Pool {
	m.tlsOnce.Do(func() { m.tlsPool = tlsio.NewPool(max(2*runtime.GOMAXPROCS(0), 4)) })
	return m.tlsPool
}

// startTLS begins the server handshake of c, accepted by a TLS listener.
// Until it ends, c is not announced; the session's records go out
// through c's send queue.
func (w *worker) startTLS(c *Conn, lt *listenerTLS) {
	t := &tlsConn{timeout: lt.timeout}
	t.s = tlsio.Server(lt.cfg, c.tlsOut)
	c.tlsp.Store(t)
	w.handshake(c)
}

// handshake starts c's handshake on the manager's pool; its end comes
// back to the worker as a reqTLSReady.
func (w *worker) handshake(c *Conn) {
	if w.plain.buf == nil {
		if err := w.plain.init(tlsArenaSize); err != nil {
			w.m.logf("worker %d: TLS plaintext memory: %v", w.idx, err)
			w.abort(c, err, true)
			return
		}
	}
	t := c.tlsc()
	t.s.Handshake(w.m.handshakes(), t.timeout, func(err error) {
		t.err = err
		// A worker that quit has dropped c already: nothing to tell.
		c.w.enqueue(request{kind: reqTLSReady, c: c})
	})
}

// tlsOut queues ciphertext the session made (handshake messages, records,
// close_notify) to be written, as sendParts queues plaintext. crypto/tls
// makes one Write's records under its own lock, so records of different
// threads' sends never interleave.
func (c *Conn) tlsOut(b []byte) error {
	c.mu.Lock()
	if c.freed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.sendq.append(b)
	wake := !c.flushQueued && !c.sending
	if wake {
		c.flushQueued = true
	}
	c.mu.Unlock()
	c.m.pendingSend.Add(int64(len(b)))
	if wake {
		c.w.enqueue(request{kind: reqFlush, c: c})
	}
	return nil
}

// tlsReady ends a handshake on c's worker: a failure closes c (an
// accepted one unseen, an outbound one with a *TLSError), a success
// announces it, writes what was sent before, and delivers what came with
// the handshake's end.
func (w *worker) tlsReady(c *Conn) {
	t := c.tlsc()
	if c.state != stateOpen {
		return // closed meanwhile (a timeout, a reset, the manager's close)
	}
	t.done = true
	if t.err != nil {
		// Closed, not reset: the alert crypto/tls queued tells the peer
		// why (a bad certificate, no shared version), within
		// close_timeout. An accepted one is counted by tlsEnd.
		c.closeErr = &TLSError{t.err}
		w.closeGracefully(c)
		return
	}
	t.more = true
	w.m.tlsConns.Add(1)
	w.resume = append(w.resume, c)
	w.writable(c)
	c.mu.Lock()
	shut, req := c.writeShut, c.req
	c.mu.Unlock()
	if shut {
		c.tlsClosing() // shutdown_write was asked while the handshake ran
	}
	switch {
	case t.upgrade:
		w.closeOrFlush(c, req)
	case c.outbound:
		w.announceConnect(c)
	default:
		w.announce(c)
	}
}

// writable lets the application's sends through to the session, the
// early ones first.
func (w *worker) writable(c *Conn) {
	t := c.tlsc()
	t.wmu.Lock()
	defer t.wmu.Unlock()
	t.writable = true
	if t.early.len() == 0 {
		return
	}
	buf := make([]byte, t.early.len())
	t.early.read(buf)
	t.early.reset()
	t.s.Write(buf) // its records go to sendq; an error (the peer gone) ends c by its receive
}

// sendTLS is sendParts for a TLS connection: the limit is checked against
// what is queued, then the parts are encrypted, outside c.mu, and their
// records queued by tlsOut.
func (c *Conn) sendTLS(a, p, z []byte) error {
	n := len(a) + len(p) + len(z)
	t := c.tlsc()
	t.wmu.Lock()
	defer t.wmu.Unlock()
	c.mu.Lock()
	if c.req != closeNone || c.writeShut || c.freed {
		c.mu.Unlock()
		return ErrClosed
	}
	if n == 0 {
		c.mu.Unlock()
		return nil
	}
	if c.sendq.len()+t.early.len()+n > c.m.opts.sendLimit {
		c.drainArmed = true
		c.mu.Unlock()
		return ErrBufferFull
	}
	if !t.writable {
		// Sent before the handshake ended: written once it has.
		t.early.append(a)
		t.early.append(p)
		t.early.append(z)
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	if len(a)+len(z) > 0 {
		// One Write: a frame's header and payload in the same records.
		p = append(append(append(make([]byte, 0, n), a...), p...), z...)
	}
	if _, err := t.s.Write(p); err != nil {
		// close_notify went out meanwhile (a close from another thread),
		// or the connection is gone.
		return ErrClosed
	}
	c.mu.Lock()
	if c.sendq.len() > c.m.lowWater {
		c.drainArmed = true
	}
	c.mu.Unlock()
	return nil
}

// tlsClosing sends close_notify ahead of a graceful close or a
// shutdown_write's FIN, after everything sent before it.
func (c *Conn) tlsClosing() {
	if t := c.tlsc(); t != nil && t.s.Ready() {
		t.s.CloseWrite()
	}
}

// tlsRecv takes ciphertext c received. It returns the plaintext to
// deliver (in the worker's plaintext arena, valid for the round), or
// ok false when there is none yet: a handshake runs (the next receive is
// posted), or no record is whole.
func (w *worker) tlsRecv(c *Conn, data []byte) (plain []byte, ok bool) {
	t := c.tlsc()
	t.s.Feed(data)
	if !t.up() {
		w.rearm = append(w.rearm, c) // the handshake's goroutine reads it
		return nil, false
	}
	plain, ok = w.decrypt(c)
	if !ok && c.state == stateOpen && !t.more {
		w.rearm = append(w.rearm, c)
	}
	return plain, ok
}

// tlsPlainChunk is the most plaintext one decrypt takes from the arena:
// what a 64 KiB receive can hold.
const tlsPlainChunk = maxRead

// decrypt reads the plaintext of the whole records the session holds
// into the arena. t.more stays set when the arena ran short (deliverHeld
// comes back for the rest). The peer's close_notify is its end of stream;
// a broken record aborts c.
func (w *worker) decrypt(c *Conn) ([]byte, bool) {
	t := c.tlsc()
	t.more = false
	buf := w.plain.take(tlsPlainChunk)
	n := 0
	for {
		if n == len(buf) {
			t.more = true
			break
		}
		k, err := t.s.Read(buf[n:])
		n += k
		if err == nil {
			continue
		}
		if errors.Is(err, tlsio.ErrWouldBlock) {
			break
		}
		if errors.Is(err, io.EOF) {
			c.eof = true
			w.resume = append(w.resume, c) // told after the plaintext before it
			break
		}
		w.abort(c, &TLSError{err}, false)
		return nil, false
	}
	w.plain.untake(len(buf) - n)
	if n == 0 {
		return nil, false
	}
	return buf[:n:n], true
}

// tlsEnd is finalize's part: a handshake still running ends (its done
// finds c closed); a connection never announced counts as a failed
// handshake, whatever ended it (the peer, a timeout, a bad message).
func (w *worker) tlsEnd(c *Conn) {
	t := c.tlsc()
	if t == nil {
		return
	}
	t.s.Close()
	t.wmu.Lock()
	t.early.reset()
	t.wmu.Unlock()
	switch {
	case t.up():
		w.m.tlsConns.Add(-1)
	case !c.outbound:
		w.stats.tlsHandshakeErrors.Add(1)
	}
}

// tlsArenaSize is a worker's plaintext memory per round, made when its
// first TLS connection comes (spill.go: off the Go heap, as received
// data is).
const tlsArenaSize = 1 << 20

// tlsState is the manager's TLS bookkeeping.
type tlsState struct {
	tlsOnce  sync.Once
	tlsPool  *tlsio.Pool
	tlsConns atomic.Int64 // announced TLS connections open now
}
