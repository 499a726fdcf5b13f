package engine_test

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestFaultChurn: connect/close cycles from 4 goroutines, in four ways
// (echo then close, close at once, reset, the server closes first): every
// connection accepted is closed exactly once, nothing is left behind.
func TestFaultChurn(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "churn", backend)
		cycles := scale(f, "cycles", 3000, 20000)
		const parallel = 4
		h := newModal()
		m, addr := serve(t, h, backend, engine.WithWorkers(2))
		var wg sync.WaitGroup
		var next atomic.Int64
		for range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= cycles {
						return
					}
					if err := churnOnce(addr, i%4); err != nil {
						t.Errorf("cycle %d: %v", i, err)
						return
					}
				}
			}()
		}
		wg.Wait()
		// Where a connection reset before its accept completed is never
		// accepted (acceptDropsResets), only reset cycles may be missing.
		opened := cycles
		settle(t, "every connection closed", func() bool {
			if acceptDropsResets {
				opened = int(m.Stats().Accepted)
			}
			return h.closedCount() == opened && opened >= cycles-(cycles+1)/4
		})
		h.byMode(t, 0) // checks each was closed exactly once
		s := m.Stats()
		if s.Accepted != uint64(opened) || s.Closed != uint64(opened) || s.Connections != 0 {
			t.Errorf("after %d cycles: %+v", cycles, s)
		}
		f.sized("%d connect/close cycles, %d at a time: echo+close, close, reset, server closes", cycles, parallel)
	})
}

func churnOnce(addr string, how int) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(faultWait))
	switch how {
	case 0:
		c.Write([]byte{'E'})
		return roundTrip(c, []byte("churn"))
	case 1:
		return nil
	case 2:
		c.Write([]byte{'E'})
		return c.(*net.TCPConn).SetLinger(0)
	default:
		c.Write([]byte{'Q'})
		_, err := io.ReadAll(c)
		return err
	}
}

// TestFaultCloseUnderLoad: Close of the manager while 200 connections
// stream both ways: every OnClose exactly once, Close returns within its
// timeout, every peer sees the end, every goroutine and descriptor is gone.
func TestFaultCloseUnderLoad(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "close_under_load", backend)
		const conns = 200
		rounds := scale(f, "rounds", 1, 10)
		var worst time.Duration
		var moved int64
		for range rounds {
			took, n := closeUnderLoadOnce(t, backend, conns)
			worst = max(worst, took)
			moved += n
		}
		f.sized("%d rounds x %d connections streaming both ways (%s moved) when Close(2 s) is called", rounds, conns, mib(moved))
		f.note("Close returned after at most %s", ms(worst))
	})
}

func closeUnderLoadOnce(t *testing.T, backend string, conns int) (time.Duration, int64) {
	h := newCountingEcho()
	m, addr := serve(t, h, backend, engine.WithWorkers(2))
	var clients sync.WaitGroup
	var stuck atomic.Int64
	cs := make([]net.Conn, conns)
	for i := range cs {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(faultWait))
		cs[i] = c
	}
	for i, c := range cs {
		clients.Add(2)
		go func() {
			defer clients.Done()
			p, _ := payload(uint64(i), 16<<10)
			for {
				if _, err := c.Write(p); err != nil {
					timedOut(err, &stuck)
					return
				}
			}
		}()
		go func() {
			defer clients.Done()
			defer c.Close()
			_, err := io.Copy(io.Discard, c)
			timedOut(err, &stuck)
		}()
	}
	settle(t, "traffic on every connection", func() bool {
		s := m.Stats()
		return s.Accepted == uint64(conns) && s.BytesOut > uint64(conns)*64<<10
	})
	start := time.Now()
	m.Close(2 * time.Second)
	took := time.Since(start)
	clients.Wait()
	if took > 4*time.Second {
		t.Errorf("Close took %s", took)
	}
	if stuck.Load() != 0 {
		t.Errorf("%d peers never saw the end", stuck.Load())
	}
	n, _, twice := h.closed()
	if int64(n) != h.opened.Load() || n != conns || twice != 0 {
		t.Errorf("opened %d, closed %d (%d more than once)", h.opened.Load(), n, twice)
	}
	return took, int64(m.Stats().BytesIn + m.Stats().BytesOut)
}

func timedOut(err error, stuck *atomic.Int64) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		stuck.Add(1)
	}
}

// TestFaultManyManagers: managers made and closed one after another in one
// process, each closed with connections open and data in flight, inbound
// and outbound: every OnClose once, every listener closed, and the process
// back to its baseline afterwards.
func TestFaultManyManagers(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "many_managers", backend)
		managers := scale(f, "managers", 50, 500)
		for i := range managers {
			h := newCountingEcho()
			m, err := engine.New(h, engine.WithBackend(backend), engine.WithWorkers(1+i%3))
			if err != nil {
				t.Fatal(err)
			}
			l := listenAndStart(t, m)
			var peers []net.Conn
			for range 3 {
				c, err := net.Dial("tcp", l.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				c.SetDeadline(time.Now().Add(10 * time.Second))
				peers = append(peers, c)
				if err := roundTrip(c, []byte("in flight")); err != nil {
					t.Fatal(err)
				}
				c.Write([]byte("unanswered"))
			}
			out, err := m.Connect(l.Addr(), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			out.Send([]byte("outbound"))
			m.Close(time.Second)
			for _, c := range peers {
				io.Copy(io.Discard, c)
				c.Close()
			}
			n, _, twice := h.closed()
			unopened := h.neverOpened()
			if int64(n-len(unopened)) != h.opened.Load() || twice != 0 || n < 3 ||
				(len(unopened) > 0 && (len(unopened) > 1 || unopened[0] != out.ID())) {
				t.Fatalf("manager %d: opened %d, closed %d (%d more than once, %v never opened)",
					i, h.opened.Load(), n, twice, unopened)
			}
			select {
			case <-l.Done():
			default:
				t.Fatalf("manager %d: listener open after Close", i)
			}
			if s := m.Stats(); s.Connections != 0 || s.Stray != 0 {
				t.Fatalf("manager %d after Close: %+v", i, s)
			}
		}
		f.sized("%d managers (1-3 workers), each closed with 3 inbound + 1 outbound connections open", managers)
	})
}
