package engine_test

import (
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// closeSlack is how late on a loaded machine a close may come.
var closeSlack = 2 * time.Second * slowdown

// TestCloseBoundsReading: a connection closed with bytes to flush to a
// peer that never reads but keeps sending reads and drops at most about
// the receive buffer limit, then stops reading (TCP pushes back on the
// peer), and is reset after close_timeout with ErrCloseTimeout, long before
// the manager closes. With nothing to flush it closes at once.
func TestCloseBoundsReading(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		for _, reply := range []bool{true, false} {
			name := "nothing to flush"
			if reply {
				name = "an unflushable reply"
			}
			t.Run(name, func(t *testing.T) {
				checkLeaks(t)
				const closeTimeout = time.Second
				r := newRecorder()
				r.discard = true
				m, peer, srv := serveOne(t, r, backend, engine.WithSendBufferLimit(64<<20),
					engine.WithCloseTimeout(closeTimeout))
				defer peer.Close()
				var sent atomic.Int64
				go flood(peer, &sent)
				if reply {
					srv.Send(pattern(32 << 20)) // far more than the kernel buffers hold
				}
				eventually(t, "the server reading the flood", func() bool { return m.Stats().BytesIn > 1<<20 })
				start := time.Now()
				srv.Close()
				err := r.waitClosed(t, srv.ID())
				took := time.Since(start)
				// What was read and never delivered: reads between Close
				// and the worker taking the request are delivered, and do
				// not count.
				read := m.Stats().BytesIn - uint64(r.receivedLen(srv.ID()))
				if reply {
					if !errors.Is(err, engine.ErrCloseTimeout) {
						t.Errorf("closed with %s, want ErrCloseTimeout", describe(err))
					}
					if took < closeTimeout-50*time.Millisecond || took > closeTimeout+closeSlack {
						t.Errorf("closed %v after Close, want about %v", took, closeTimeout)
					}
				} else if took > closeSlack {
					t.Errorf("nothing to flush, yet closed %v after Close", took)
				}
				// The limit (256 KiB) plus what one posted receive may take.
				if read > 1<<20 {
					t.Errorf("read and dropped %d bytes after Close", read)
				}
			})
		}
	})
}

// TestCloseTimeoutWithoutTraffic: a graceful close to a peer that neither
// reads nor sends ends by close_timeout, not by the manager's close.
func TestCloseTimeoutWithoutTraffic(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		checkLeaks(t)
		r := newRecorder()
		_, peer, srv := serveOne(t, r, backend, engine.WithSendBufferLimit(64<<20),
			engine.WithCloseTimeout(300*time.Millisecond))
		defer peer.Close()
		srv.Send(pattern(32 << 20))
		start := time.Now()
		srv.Close()
		err := r.waitClosed(t, srv.ID())
		if !errors.Is(err, engine.ErrCloseTimeout) {
			t.Errorf("closed with %s, want ErrCloseTimeout", describe(err))
		}
		if took := time.Since(start); took < 250*time.Millisecond {
			t.Errorf("reset %v after Close, before close_timeout", took)
		}
		if s := r.sentTo(srv.ID()); s >= 32<<20 {
			t.Errorf("all %d bytes sent to a peer that never read", s)
		}
	})
}

// TestCloseLetsASlowReaderFinish: a peer that reads slowly but within
// close_timeout gets every byte, then a clean close.
func TestCloseLetsASlowReaderFinish(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		checkLeaks(t)
		r := newRecorder()
		_, peer, srv := serveOne(t, r, backend, engine.WithSendBufferLimit(16<<20), engine.WithCloseTimeout(30*time.Second))
		defer peer.Close()
		payload := pattern(8 << 20) // more than the kernel buffers take at once
		srv.Send(payload)
		srv.Close()
		got := make([]byte, 0, len(payload))
		buf := make([]byte, 32<<10)
		for {
			n, err := peer.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("after %d bytes: %v", len(got), err)
			}
			time.Sleep(time.Millisecond) // about 32 MB/s at most
		}
		if string(got) != string(payload) {
			t.Fatalf("got %d bytes, want %d in order", len(got), len(payload))
		}
		wantNil(t, r.waitClosed(t, srv.ID()))
	})
}
