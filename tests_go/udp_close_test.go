package engine_test

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestUDPCloseWhileTrafficFlows: an endpoint closed while datagrams pour
// in and its handler sends three for each closes exactly once (Done; a
// second Close is a no-op), delivers nothing after Done, refuses SendTo,
// and leaves no socket, pending byte or stray completion behind.
func TestUDPCloseWhileTrafficFlows(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		var after atomic.Int64
		var done atomic.Bool
		h := newUDPEcho()
		h.onData = func(e *engine.Endpoint, data []byte, addr netip.AddrPort) {
			if done.Load() {
				after.Add(1)
			}
			for range 3 {
				if err := e.SendTo(data, addr); err != nil && !errors.Is(err, engine.ErrClosed) && !errors.Is(err, engine.ErrBufferFull) {
					t.Errorf("SendTo: %v", err)
				}
			}
		}
		m := startManager(t, h, backend, engine.WithWorkers(2))
		e := bindUDP(t, m, "127.0.0.1:0")
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for range 2 {
			cli := newUDPPeer(t, "udp4")
			wg.Add(2)
			go func() { // the flood
				defer wg.Done()
				msg := make([]byte, 300)
				for {
					select {
					case <-stop:
						return
					default:
					}
					cli.WriteToUDPAddrPort(msg, e.Addr())
				}
			}()
			go func() { // the replies, read so that the peer's buffer never stops them
				defer wg.Done()
				buf := make([]byte, 1024)
				for {
					cli.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
					if _, _, err := cli.ReadFromUDPAddrPort(buf); err != nil {
						select {
						case <-stop:
							return
						default:
						}
					}
				}
			}()
		}
		deadline := time.Now().Add(waitBound)
		for m.Stats().DatagramsIn < 200 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		waitDone(t, e)
		done.Store(true)
		if err := e.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if !e.Closed() {
			t.Error("Closed() is false after Done")
		}
		if err := e.SendTo([]byte("x"), e.Addr()); !errors.Is(err, engine.ErrClosed) {
			t.Errorf("SendTo after Close: %v, want ErrClosed", err)
		}
		time.Sleep(20 * time.Millisecond) // the flood goes on: nothing may reach the handler
		close(stop)
		wg.Wait()
		if n := after.Load(); n != 0 {
			t.Errorf("%d datagrams delivered after Done", n)
		}
		if s := m.Stats(); s.Endpoints != 0 || s.PendingSendBytes != 0 || s.DatagramsIn < 200 {
			t.Errorf("after close: endpoints %d, pending %d, in %d", s.Endpoints, s.PendingSendBytes, s.DatagramsIn)
		}
	})
}

// TestUDPManagerCloseClosesEndpoints: closing the manager closes every
// endpoint, each once, with what its handlers queued sent or dropped by
// the close timeout.
func TestUDPManagerCloseClosesEndpoints(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := newManager(t, newUDPEcho(), backend, engine.WithWorkers(2))
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		var eps []*engine.Endpoint
		for range 4 {
			eps = append(eps, bindUDP(t, m, "127.0.0.1:0"))
		}
		cli := newUDPPeer(t, "udp4")
		for _, e := range eps {
			cli.WriteToUDPAddrPort([]byte("hi"), e.Addr())
		}
		closeManager(t, m)
		for _, e := range eps {
			waitDone(t, e)
		}
		if _, err := m.BindUDP(netip.MustParseAddrPort("127.0.0.1:0")); !errors.Is(err, engine.ErrManagerClosed) {
			t.Errorf("BindUDP after close: %v, want ErrManagerClosed", err)
		}
	})
}
