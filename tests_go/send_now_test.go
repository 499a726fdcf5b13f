package engine_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// replyPool echoes from goroutines that are not the worker, with SendNow:
// a thread pool's replies. Each connection's replies come from one of its
// goroutines, in order, as an application's per-connection queue keeps them.
type replyPool struct {
	queues []chan reply
	wg     sync.WaitGroup
}

type reply struct {
	c    *engine.Conn
	data []byte
}

func newReplyPool(n int) *replyPool {
	p := &replyPool{}
	for range n {
		q := make(chan reply, 1024)
		p.queues = append(p.queues, q)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for r := range q {
				for r.c.SendNow(r.data) == engine.ErrBufferFull {
					time.Sleep(time.Millisecond) // the peer reads behind: wait for room
				}
			}
		}()
	}
	return p
}

func (p *replyPool) submit(c *engine.Conn, data []byte) {
	p.queues[c.ID()%uint64(len(p.queues))] <- reply{c, bytes.Clone(data)}
}

func (p *replyPool) stop() {
	for _, q := range p.queues {
		close(q)
	}
	p.wg.Wait()
}

// TestSendNowEchoFromAPool: 16 peers each send 1 MiB in writes of 1 B to
// 40 KB (beyond a chunk, so both of SendNow's ways) and read it all back,
// in order, while the replies come from two goroutines by SendNow.
func TestSendNowEchoFromAPool(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		pool := newReplyPool(2)
		defer pool.stop()
		r := newRecorder()
		r.onRecv = pool.submit
		_, addr := serve(t, r, backend, engine.WithEvents(engine.MaskDrain), engine.WithSendBufferLimit(256<<10))
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- echoRandomly(addr, int64(i), 1<<20)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		eventually(t, "every connection closed", func() bool { return r.closedCount() == 16 })
		r.checkExactlyOnce(t)
	})
}

// echoRandomly writes total bytes in random pieces to an echo server at
// addr and checks that the same bytes come back, in order.
func echoRandomly(addr string, seed int64, total int) error {
	c, err := net.DialTimeout("tcp", addr, waitBound)
	if err != nil {
		return err
	}
	defer c.Close()
	rng := rand.New(rand.NewSource(seed))
	want := make([]byte, total)
	rng.Read(want)
	got := make(chan error, 1)
	go func() {
		back := make([]byte, total)
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		if _, err := io.ReadFull(c, back); err != nil {
			got <- err
		} else if !bytes.Equal(back, want) {
			got <- errors.New("the echo came back altered or out of order")
		} else {
			got <- nil
		}
	}()
	for rest := want; len(rest) > 0; {
		k := min(len(rest), 1+rng.Intn(40000))
		if _, err := c.Write(rest[:k]); err != nil {
			return err
		}
		rest = rest[k:]
	}
	return <-got
}

// TestSendNowRacesClose: goroutines send with SendNow as fast as they can
// while another closes or aborts the connection, 100 times: every send
// before the close fails only with ErrClosed, the connection closes
// exactly once, and nothing is left pending or leaked.
func TestSendNowRacesClose(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		m, addr := serve(t, r, backend, engine.WithEvents(engine.MaskDrain))
		for round := range 100 {
			peer := dial(t, addr)
			go io.Copy(io.Discard, peer)
			c := r.nextConn(t)
			var wg sync.WaitGroup
			for range 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						err := c.SendNow([]byte("0123456789abcdef"))
						if err == engine.ErrClosed {
							return
						}
						if err != nil && err != engine.ErrBufferFull {
							t.Errorf("round %d: %v", round, err)
							return
						}
					}
				}()
			}
			time.Sleep(time.Duration(rand.Intn(2000)) * time.Microsecond)
			if round%2 == 0 {
				c.Close()
			} else {
				c.Abort()
			}
			wg.Wait()
			r.waitClosed(t, c.ID())
			peer.Close()
		}
		eventually(t, "nothing pending", func() bool { s := m.Stats(); return s.PendingSendBytes == 0 && s.Connections == 0 })
		r.checkExactlyOnce(t)
	})
}
