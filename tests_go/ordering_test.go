package engine_test

import (
	"encoding/binary"
	"io"
	"sync"
	"testing"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestPerConnectionOrdering: with 4 workers, each connection's callbacks
// come in order (open, receives, close), never two at once, and its bytes
// in the order sent.
func TestPerConnectionOrdering(t *testing.T) {
	const conns, msgs = 40, 200
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		m, addr := serve(t, r, backend, engine.WithWorkers(4))
		var wg sync.WaitGroup
		for i := 0; i < conns; i++ {
			c := dial(t, addr)
			wg.Add(1)
			go func() {
				defer wg.Done()
				go func() {
					var b [8]byte
					for n := uint64(0); n < msgs; n++ {
						binary.BigEndian.PutUint64(b[:], n)
						if _, err := c.Write(b[:]); err != nil {
							return
						}
					}
				}()
				var b [8]byte
				for n := uint64(0); n < msgs; n++ {
					if _, err := io.ReadFull(c, b[:]); err != nil {
						t.Error(err)
						return
					}
					if got := binary.BigEndian.Uint64(b[:]); got != n {
						t.Errorf("message %d came as %d", n, got)
						return
					}
				}
				c.Close()
			}()
		}
		wg.Wait()
		closeManager(t, m)
		r.checkExactlyOnce(t)
		r.mu.Lock()
		defer r.mu.Unlock()
		for id, order := range r.order {
			if order[0] != engine.EventAccept || order[len(order)-1] != engine.EventClose {
				t.Errorf("connection %d: events %v", id, order)
			}
		}
	})
}
