package engine_test

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestFaultFirstDataSilentPeers: a first-data listener under a crowd of
// peers that connect and never speak, more than its posted accepts, while
// clients that speak are served all along. The silent ones are dropped
// after the accept timeout (on Windows never accepted), every speaking
// client gets its echo, and nothing is left behind.
func TestFaultFirstDataSilentPeers(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "first_data_silent", backend)
		silentN := scale(f, "silent peers", 32, 1000)
		talks := scale(f, "round trips of speaking clients", 400, 20_000)
		r := newEchoRecorder()
		r.discard, r.unlisted = true, true
		m := newManager(t, r, backend, engine.WithAcceptTimeout(time.Second), engine.WithWorkers(2))
		l := listenAndStart(t, m, engine.WithFirstData(true), engine.WithAccepts(16))
		t.Cleanup(func() { closeManager(t, m) })
		addr := l.Addr().String()

		silent := make([]net.Conn, 0, silentN)
		for range silentN {
			c, err := net.DialTimeout("tcp", addr, faultWait)
			if err != nil {
				t.Fatal(err)
			}
			silent = append(silent, c)
		}
		began := time.Now()
		runClients(t, 4, func(i int) error {
			for k := i; k < talks; k += 4 {
				c, err := net.DialTimeout("tcp", addr, faultWait)
				if err != nil {
					return err
				}
				c.SetDeadline(time.Now().Add(faultWait))
				err = roundTrip(c, []byte("speaks first"))
				c.Close()
				if err != nil {
					return err
				}
			}
			return nil
		})
		served := time.Since(began)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var gotData int
		for _, c := range silent {
			wg.Go(func() {
				defer c.Close()
				c.SetReadDeadline(time.Now().Add(faultWait))
				n, err := c.Read(make([]byte, 1))
				var ne net.Error
				if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
					mu.Lock()
					gotData++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if gotData != 0 {
			t.Errorf("%d silent peers were not dropped", gotData)
		}
		settle(t, "every connection closed", func() bool { return m.Stats().Connections == 0 })
		s := m.Stats()
		if runtime.GOOS == "windows" && s.Accepted != uint64(talks) {
			t.Errorf("accepted %d, want the %d speaking clients only", s.Accepted, talks)
		}
		f.sized("%d silent peers (more than the 16 accepts posted) and %d round trips from 4 speaking clients; "+
			"accept timeout 1 s", silentN, talks)
		f.note("speaking clients served in %s; %d connections accepted in all", ms(served), s.Accepted)
	})
}
