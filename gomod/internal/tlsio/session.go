// Package tlsio runs stock crypto/tls over bytes the engine moves: the
// engine feeds the ciphertext it received and sends the ciphertext the
// session hands it; the session gives back plaintext. Only the handshake,
// which crypto/tls runs as blocking code, takes a goroutine, from a
// bounded Pool; afterwards records are decrypted and encrypted on the
// caller's thread (the engine's worker, or a thread sending), one at a
// time, and nothing waits.
package tlsio

import (
	"context"
	"crypto/tls"
	"errors"
	"sync/atomic"
	"time"
)

// Session is one TLS connection's state.
type Session struct {
	t     transport
	conn  *tls.Conn
	state atomic.Int32
	err   error // the handshake's, set before state leaves handshaking
}

const (
	handshaking int32 = iota
	ready
	failed
)

// ErrHandshakeTimeout ends a handshake that took longer than its timeout.
var ErrHandshakeTimeout = errors.New("tlsio: handshake timed out")

// Server is the server side of a connection; out takes the ciphertext to
// send, in order. out is called by the handshake's goroutine, and by
// whoever calls Write or CloseWrite; it must not call back into the
// session.
func Server(cfg *tls.Config, out func([]byte) error) *Session {
	s := &Session{}
	s.t.init(out)
	s.conn = tls.Server(&s.t, cfg)
	return s
}

// Client is the client side of a connection (cfg.ServerName set, or
// InsecureSkipVerify).
func Client(cfg *tls.Config, out func([]byte) error) *Session {
	s := &Session{}
	s.t.init(out)
	s.conn = tls.Client(&s.t, cfg)
	return s
}

// Handshake runs the handshake on a goroutine of pool, bounded by timeout
// (0: none) from this call, the wait for a goroutine included (while it
// waits for the peer's bytes it holds no slot of the pool); done is
// called on that goroutine with nil or the reason it failed. Reads made
// before it is done return ErrWouldBlock.
func (s *Session) Handshake(pool *Pool, timeout time.Duration, done func(error)) {
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	s.t.mu.Lock()
	s.t.pool = pool
	s.t.mu.Unlock()
	pool.Go(func() {
		defer cancel()
		err := s.conn.HandshakeContext(ctx)
		if err != nil && ctx.Err() == context.DeadlineExceeded {
			err = ErrHandshakeTimeout
		}
		s.t.setBlocking(false)
		s.err = err
		if err != nil {
			s.state.Store(failed)
		} else {
			s.state.Store(ready)
		}
		done(err)
	})
}

// Ready reports whether the handshake has finished well.
func (s *Session) Ready() bool { return s.state.Load() == ready }

// Feed gives the session received ciphertext (copied). After the
// handshake, Read until ErrWouldBlock after each Feed (and once when the
// handshake is done: the peer's first records may have come with its
// last handshake message).
func (s *Session) Feed(b []byte) { s.t.feed(b) }

// FeedEOF tells the session the peer's end of stream came.
func (s *Session) FeedEOF() { s.t.feedEOF() }

// Buffered is how many fed bytes are not read yet (not counting a record
// read in part, which the tls.Conn holds): what bounds a reader.
func (s *Session) Buffered() int { return s.t.buffered() }

// Read decrypts plaintext into p: ErrWouldBlock when no whole record is
// buffered, io.EOF after the peer's close_notify (or its end of stream at
// a record boundary), another error when the peer broke the protocol.
func (s *Session) Read(p []byte) (int, error) {
	switch s.state.Load() {
	case handshaking:
		return 0, ErrWouldBlock
	case failed:
		return 0, s.err
	}
	return s.conn.Read(p)
}

// Write encrypts p and hands the records to out, before it returns.
func (s *Session) Write(p []byte) (int, error) {
	if s.state.Load() != ready {
		return 0, errors.New("tlsio: write before the handshake is done")
	}
	return s.conn.Write(p)
}

// CloseWrite sends close_notify.
func (s *Session) CloseWrite() error { return s.conn.CloseWrite() }

// Close gives up on the session: a handshake still running ends (done is
// called with its error), and nothing more is read.
func (s *Session) Close() { s.t.Close() }

// State is the connection's TLS state (version, cipher, ALPN, the peer's
// certificates, ...).
func (s *Session) State() tls.ConnectionState { return s.conn.ConnectionState() }
