package tlsio

import (
	"io"
	"net"
	"sync"
	"time"
)

// ErrWouldBlock is what Session.Read returns when no whole record is
// buffered: feed more and read again. It is a temporary net.Error, which
// crypto/tls does not keep as the connection's error (a record read in
// part stays buffered in the tls.Conn).
var ErrWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsio: no whole record buffered" }
func (wouldBlock) Timeout() bool   { return false }
func (wouldBlock) Temporary() bool { return true }

// transport is the net.Conn a tls.Conn reads and writes: the ciphertext
// the engine received (Feed), and a function that takes the ciphertext
// to send. While the handshake runs, on a goroutine of its own, a read
// waits for input; afterwards reads never wait (ErrWouldBlock).
type transport struct {
	mu       sync.Mutex
	input    sync.Cond
	in       []byte // fed, not yet read
	eof      bool   // the peer's end of stream is fed
	closed   bool
	blocking bool  // a read waits for input (the handshake)
	pool     *Pool // the handshake's: its slot is given back while a read waits
	out      func([]byte) error
}

func (t *transport) init(out func([]byte) error) {
	t.input.L = &t.mu
	t.out = out
	t.blocking = true
}

// feed adds received ciphertext, copied.
func (t *transport) feed(b []byte) {
	t.mu.Lock()
	t.in = append(t.in, b...)
	t.mu.Unlock()
	t.input.Signal()
}

func (t *transport) feedEOF() {
	t.mu.Lock()
	t.eof = true
	t.mu.Unlock()
	t.input.Signal()
}

// buffered is how many fed bytes the tls.Conn has not read yet.
func (t *transport) buffered() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.in)
}

func (t *transport) setBlocking(b bool) {
	t.mu.Lock()
	t.blocking = b
	t.mu.Unlock()
	t.input.Broadcast()
}

func (t *transport) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for {
		switch {
		case len(t.in) > 0:
			n := copy(p, t.in)
			t.in = t.in[n:]
			if len(t.in) == 0 {
				t.in = nil // the memory goes with the last byte: an idle session holds none
			}
			return n, nil
		case t.closed:
			return 0, net.ErrClosed
		case t.eof:
			return 0, io.EOF
		case !t.blocking:
			return 0, ErrWouldBlock
		}
		t.wait()
	}
}

// wait waits for input (t.mu held), holding no slot of the handshake pool
// meanwhile; it takes one back before it returns, without t.mu, so that
// input can be fed while it waits for the slot.
func (t *transport) wait() {
	if t.pool == nil {
		t.input.Wait()
		return
	}
	t.pool.Park()
	t.input.Wait()
	t.mu.Unlock()
	t.pool.Unpark()
	t.mu.Lock()
}

func (t *transport) Write(p []byte) (int, error) {
	if err := t.out(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends a read waiting for input (a handshake given up on); later
// reads fail.
func (t *transport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.in = nil
	t.mu.Unlock()
	t.input.Broadcast()
	return nil
}

// The engine owns the socket: these only make transport a net.Conn.
func (t *transport) LocalAddr() net.Addr              { return memAddr{} }
func (t *transport) RemoteAddr() net.Addr             { return memAddr{} }
func (t *transport) SetDeadline(time.Time) error      { return nil }
func (t *transport) SetReadDeadline(time.Time) error  { return nil }
func (t *transport) SetWriteDeadline(time.Time) error { return nil }

type memAddr struct{}

func (memAddr) Network() string { return "tlsio" }
func (memAddr) String() string  { return "tlsio" }
