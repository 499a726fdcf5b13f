package engine

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// acceptPolled drives worker 0 of a poll-mode manager from this thread
// until a peer's connection is accepted; it returns both ends.
func acceptPolled(t *testing.T, backend string) (*Manager, *Conn, net.Conn) {
	runtime.LockOSThread() // the worker is driven from this thread
	t.Cleanup(runtime.UnlockOSThread)
	m, err := New(nil, WithBackend(backend), WithWorkers(1), WithEvents(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(5 * time.Second) })
	l, err := m.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	peer, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		evs, _ := m.Poll(0, 16, 50*time.Millisecond)
		for _, ev := range evs {
			if ev.Kind == EventAccept {
				return m, ev.Conn, peer
			}
		}
	}
	t.Fatal("no accept")
	return nil, nil, nil
}

// deliver polls m until peer has read len(want) bytes (at most 30 s),
// checks they are want, then polls until c has nothing pending: the peer
// may have the bytes before the last send's completion is taken (IOCP).
func deliver(t *testing.T, m *Manager, c *Conn, peer net.Conn, want []byte) {
	t.Helper()
	done := make(chan []byte)
	go func() {
		got := make([]byte, len(want))
		peer.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, _ := io.ReadFull(peer, got)
		done <- got[:n]
	}()
	for {
		m.Poll(0, 16, 10*time.Millisecond)
		select {
		case got := <-done:
			if !bytes.Equal(got, want) {
				t.Fatalf("%d bytes of %d arrived, or out of order", len(got), len(want))
			}
			for end := time.Now().Add(10 * time.Second); c.Pending() != 0 && time.Now().Before(end); {
				m.Poll(0, 16, 10*time.Millisecond)
			}
			if p := c.Pending(); p != 0 {
				t.Errorf("pending %d", p)
			}
			return
		default:
		}
	}
}

// TestSendNowWritesOnTheCallersThread: with the worker not running at all,
// SendNow's bytes reach the peer (Send's wait for the worker), and what
// the socket does not take waits for the worker, in order.
func TestSendNowWritesOnTheCallersThread(t *testing.T) {
	if !poller.CanWriteNow {
		t.Skip("no WriteNow on this OS: SendNow is Send")
	}
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			m, c, peer := acceptPolled(t, backend)
			msg := []byte("written by the caller")
			if err := c.SendNow(msg); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(msg))
			peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(peer, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("%q %v: the worker was not driven, so only SendNow could have written", got, err)
			}
			if c.Pending() != 0 || m.Stats().PendingSendBytes != 0 {
				t.Fatalf("pending %d after a direct write", c.Pending())
			}

			// A peer that does not read: the socket fills, the rest is
			// queued for the worker and leaves, in order, once it runs.
			var sent []byte
			for i := 0; c.Pending() == 0 && i < 10000; i++ {
				b := bytes.Repeat([]byte{byte(i)}, 8000)
				if err := c.SendNow(b); err != nil {
					t.Fatal(err)
				}
				sent = append(sent, b...)
			}
			if c.Pending() == 0 {
				t.Fatal("the socket never filled")
			}
			deliver(t, m, c, peer, sent)
		})
	}
}
