package engine_test

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestRecvBackpressureSlowHandler: a handler slower than its peer stalls
// reading; the kernel's window pushes back on the peer (its writes block),
// nothing grows without bound, and every byte arrives in order.
func TestRecvBackpressureSlowHandler(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		var slow atomic.Bool
		slow.Store(true)
		r.onRecv = func(c *engine.Conn, data []byte) {
			if slow.Load() {
				time.Sleep(20 * time.Millisecond)
			}
		}
		m, cli, srv := serveOne(t, r, backend)
		payload := pattern(16 << 20)
		cli.(*net.TCPConn).SetWriteBuffer(64 << 10)
		written, werr := writeCounting(cli, payload)
		time.Sleep(500 * time.Millisecond)
		if written.Load() == int64(len(payload)) {
			t.Fatalf("the peer wrote all %d bytes to a server that reads slowly", len(payload))
		}
		// The worker reads only what it delivers: at most one read is
		// between the socket and the (sleeping) handler.
		if read, got := m.Stats().BytesIn, r.receivedLen(srv.ID()); read > uint64(got+64<<10) {
			t.Errorf("read %d bytes but delivered %d: reading did not stop", read, got)
		}
		slow.Store(false)
		select {
		case err := <-werr:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitBound):
			t.Fatalf("the peer's writes stayed blocked: %d of %d bytes written", written.Load(), len(payload))
		}
		eventually(t, "all bytes delivered", func() bool { return r.receivedLen(srv.ID()) == len(payload) })
		if !bytes.Equal(r.received(srv.ID()), payload) {
			t.Fatal("bytes out of order")
		}
	})
}

// TestPauseResume: no OnRecv while paused, however much the peer sends;
// at most recv_buffer_limit bytes are held; after ResumeReading the bytes
// arrive in order.
func TestPauseResume(t *testing.T) {
	const limit = 64 << 10
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		var paused, once atomic.Bool
		var recvWhilePaused atomic.Int32
		r.onRecv = func(c *engine.Conn, data []byte) {
			if paused.Load() {
				recvWhilePaused.Add(1)
			}
			if !once.Load() && r.receivedLen(c.ID()) >= 1000 {
				once.Store(true)
				paused.Store(true)
				c.PauseReading() // from the callback: takes effect at once
			}
		}
		m, cli, srv := serveOne(t, r, backend, engine.WithRecvBufferLimit(limit))
		payload := pattern(8 << 20)
		go func() {
			cli.SetWriteDeadline(time.Now().Add(10 * time.Second))
			cli.Write(payload)
		}()
		eventually(t, "pause", paused.Load)
		time.Sleep(200 * time.Millisecond)
		if n := recvWhilePaused.Load(); n != 0 {
			t.Errorf("%d OnRecv while paused", n)
		}
		if s := m.Stats(); s.PausedReading != 1 {
			t.Errorf("paused_reading = %d", s.PausedReading)
		}
		got := r.receivedLen(srv.ID())
		if s := m.Stats(); s.BytesIn > uint64(got+limit) {
			t.Errorf("read %d bytes while paused after delivering %d (limit %d)", s.BytesIn, got, limit)
		}
		paused.Store(false)
		srv.ResumeReading()
		eventually(t, "all bytes", func() bool { return r.receivedLen(srv.ID()) == len(payload) })
		if !bytes.Equal(r.received(srv.ID()), payload) {
			t.Fatal("bytes out of order")
		}
		if s := m.Stats(); s.PausedReading != 0 {
			t.Errorf("paused_reading = %d after resume", s.PausedReading)
		}
	})
}

// TestPauseFromOtherGoroutine: a pause made outside the callbacks may let
// the current round deliver; what arrives after is held (bounded) and
// delivered in order on resume, and EOF comes after the held data.
func TestPauseFromOtherGoroutine(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		_, cli, srv := serveOne(t, r, backend, engine.WithRecvBufferLimit(8<<10))
		srv.PauseReading()
		payload := pattern(200 << 10)
		go func() { cli.Write(payload); cli.(interface{ CloseWrite() error }).CloseWrite() }()
		time.Sleep(100 * time.Millisecond)
		if n := r.receivedLen(srv.ID()); n != 0 {
			t.Errorf("%d bytes delivered while paused", n)
		}
		srv.ResumeReading()
		eventually(t, "all bytes", func() bool { return r.receivedLen(srv.ID()) == len(payload) })
		if !bytes.Equal(r.received(srv.ID()), payload) {
			t.Fatal("bytes out of order")
		}
		wantNil(t, r.waitClosed(t, srv.ID())) // EOF after the data closes it
		io.ReadAll(cli)
	})
}

// writeCounting writes payload to c in 16 KiB chunks from a goroutine,
// counting the bytes the kernel took, and reports the first error (or nil
// once all is written). Tests that need a peer's writes to block count
// rather than rely on a write deadline: Wine does not always cancel a
// blocked overlapped send when its deadline passes.
func writeCounting(c net.Conn, payload []byte) (*atomic.Int64, <-chan error) {
	var written atomic.Int64
	done := make(chan error, 1)
	go func() {
		for off := 0; off < len(payload); off += 16 << 10 {
			n, err := c.Write(payload[off:min(off+16<<10, len(payload))])
			written.Add(int64(n))
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return &written, done
}
