package engine

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// stalledSend is a worker's poller whose first PostSend waits until the
// test lets it go: a write of a MiB that takes its time.
type stalledSend struct {
	poller.Poller
	stalled atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (p *stalledSend) PostSend(r poller.Ref, bufs [][]byte) (int, bool, error) {
	if p.stalled.CompareAndSwap(false, true) {
		close(p.entered)
		<-p.release
	}
	return p.Poller.PostSend(r, bufs)
}

type openedConns struct {
	NopHandler
	opened chan *Conn
}

func (h *openedConns) OnOpen(c *Conn) { h.opened <- c }

// TestNoConnectionLockAcrossASend: while the worker is inside a send, other
// threads' Send, Pending, Closed, Local and socket options on that
// connection return at once (in Python they hold the GIL while they wait),
// and every byte still arrives, in order.
func TestNoConnectionLockAcrossASend(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			h := &openedConns{opened: make(chan *Conn, 1)}
			m, err := New(h, WithBackend(backend), WithWorkers(1))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(5 * time.Second)
			p := &stalledSend{Poller: m.workers[0].p, entered: make(chan struct{}), release: make(chan struct{})}
			m.workers[0].p = p
			l, err := m.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Start(); err != nil {
				t.Fatal(err)
			}
			peer, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			c := <-h.opened

			first, second := bytes.Repeat([]byte("a"), 1000), bytes.Repeat([]byte("b"), 1000)
			if err := c.Send(first); err != nil {
				t.Fatal(err)
			}
			select {
			case <-p.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the worker never sent")
			}
			done := make(chan error, 1)
			go func() {
				err := c.Send(second)
				_ = c.Pending()
				_ = c.Closed()
				_ = c.Local()
				if err == nil {
					err = c.SetNoDelay(true)
				}
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				close(p.release)
				t.Fatal("Send/Pending/Closed/Local/SetNoDelay waited for the worker's send")
			}
			close(p.release)
			got := make([]byte, len(first)+len(second))
			peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(peer, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append(first, second...)) {
				t.Fatal("the bytes came out of order")
			}
		})
	}
}
