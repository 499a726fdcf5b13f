package engine

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// TestTokensPastTwoToTheThirtyOne: connection ids keep growing for the
// manager's life; those past 2^31 once set the listener bit of their
// tokens, and their completions went to no one (the connection hung).
func TestTokensPastTwoToTheThirtyOne(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			runtime.LockOSThread() // the worker is driven from this thread
			defer runtime.UnlockOSThread()
			m, err := New(nil, WithBackend(backend), WithWorkers(1), WithEvents(0))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close(5 * time.Second)
			m.table.mu.Lock()
			m.table.nextID = 1<<31 - 2 // the next ids: 2^31-1, 2^31, 2^31+1
			m.table.mu.Unlock()
			l, err := m.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 3)
			for i := range 3 {
				go func() {
					peer, err := net.DialTimeout("tcp", l.Addr().String(), 10*time.Second)
					if err != nil {
						done <- err
						return
					}
					defer peer.Close()
					peer.SetDeadline(time.Now().Add(10 * time.Second))
					msg := bytes.Repeat([]byte{byte('a' + i)}, 100)
					got := make([]byte, len(msg))
					if _, err = peer.Write(msg); err == nil {
						_, err = io.ReadFull(peer, got)
					}
					if err == nil && !bytes.Equal(got, msg) {
						err = io.ErrUnexpectedEOF
					}
					done <- err
				}()
			}
			var ids []uint64
			for finished := 0; finished < 3; {
				evs, _ := m.Poll(0, 16, 20*time.Millisecond)
				for _, ev := range evs {
					switch ev.Kind {
					case EventAccept:
						ids = append(ids, ev.Conn.ID())
					case EventRecv:
						ev.Conn.Send(bytes.Clone(ev.Data))
					}
				}
				select {
				case err := <-done:
					if err != nil {
						t.Fatalf("echo on ids %v: %v", ids, err)
					}
					finished++
				default:
				}
			}
			if s := m.Stats(); s.Stray != 0 || ids[2] <= 1<<31 {
				t.Fatalf("ids %v, %d stray completions", ids, s.Stray)
			}
		})
	}
}
