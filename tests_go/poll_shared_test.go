package engine_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"math/rand"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestPollSharedManyPollers: several goroutines poll one worker, as a
// thread pool calls GetQueuedCompletionStatus on one port, each handling
// its events after EndPoll. Every event reaches one poller with its data
// intact, a connection is never handled by two pollers at once, and its
// events come in order: each echo comes back whole, with the digest of
// what its client sent. A small max makes one round's events span polls.
func TestPollSharedManyPollers(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		for _, tc := range []struct{ pollers, max int }{{4, 64}, {8, 3}, {4, 1}} {
			t.Run(fmt.Sprintf("pollers=%d,max=%d", tc.pollers, tc.max), func(t *testing.T) {
				pollShared(t, backend, tc.pollers, tc.max)
			})
		}
	})
}

func pollShared(t *testing.T, backend string, pollers, max int) {
	const conns = 30
	m := newManager(t, nil, backend)
	l := listen(t, m)
	var mu sync.Mutex
	busy := map[uint64]bool{}
	digests := map[string]hash.Hash{} // by the client's address
	closed := map[uint64]error{}
	var problems []string
	fail := func(format string, args ...any) {
		mu.Lock()
		problems = append(problems, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := 1; p <= pollers; p++ {
		wg.Add(1)
		go func(id uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(id)))
			for {
				select {
				case <-stop:
					return
				default:
				}
				evs, quit, held := m.PollShared(0, id, max, 20*time.Millisecond)
				if !held {
					continue
				}
				if max > 0 && len(evs) > max {
					fail("a batch of %d with max %d", len(evs), max)
				}
				// Copy what outlives the hold, as a binding does.
				batch := make([]engine.Event, len(evs))
				copy(batch, evs)
				mu.Lock()
				var mine []uint64
				for i := range batch {
					batch[i].Data = bytes.Clone(batch[i].Data)
					if c := batch[i].Conn; c != nil {
						if busy[c.ID()] && !slices.Contains(mine, c.ID()) {
							problems = append(problems, fmt.Sprintf("connection %d handled by two pollers at once", c.ID()))
						}
						busy[c.ID()] = true
						mine = append(mine, c.ID())
					}
				}
				mu.Unlock()
				m.EndPoll(0)
				for _, ev := range batch {
					handleShared(ev, &mu, digests, closed, fail)
				}
				time.Sleep(time.Duration(rng.Intn(300)) * time.Microsecond) // let the pollers interleave
				mu.Lock()
				for _, id := range mine {
					delete(busy, id)
				}
				mu.Unlock()
				if quit {
					return
				}
			}
		}(uint64(p))
	}

	sent := map[string][32]byte{}
	var cwg sync.WaitGroup
	for i := 0; i < conns; i++ {
		cwg.Add(1)
		go func(i int) {
			defer cwg.Done()
			data := make([]byte, 1000+rand.New(rand.NewSource(int64(i))).Intn(100_000))
			rand.New(rand.NewSource(int64(i))).Read(data)
			c, err := net.DialTimeout("tcp", l.Addr().String(), 10*time.Second)
			if err != nil {
				fail("dial: %v", err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			mu.Lock()
			sent[c.LocalAddr().String()] = sha256.Sum256(data)
			mu.Unlock()
			done := make(chan []byte)
			go func() {
				got, _ := io.ReadAll(c)
				done <- got
			}()
			for off := 0; off < len(data); off += 7919 {
				if _, err := c.Write(data[off:min(off+7919, len(data))]); err != nil {
					fail("write: %v", err)
					return
				}
			}
			c.(*net.TCPConn).CloseWrite()
			if got := <-done; !bytes.Equal(got, data) {
				fail("client %d: echo of %d bytes came back as %d other bytes", i, len(data), len(got))
			}
		}(i)
	}
	cwg.Wait()
	eventually(t, "every connection closed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(closed) == conns
	})
	close(stop)
	wg.Wait()
	for _, p := range problems {
		t.Error(p)
	}
	for addr, sum := range sent {
		if d := digests[addr]; d == nil || !bytes.Equal(d.Sum(nil), sum[:]) {
			t.Errorf("%s: the server received other bytes than the client sent", addr)
		}
	}
	for id, err := range closed {
		if err != nil {
			t.Errorf("connection %d closed with %v", id, err)
		}
	}
	if s := m.Stats(); s.Accepted != conns || s.Closed != conns || s.Stray != 0 {
		t.Errorf("stats: accepted %d, closed %d, stray %d", s.Accepted, s.Closed, s.Stray)
	}
	m.Close(5 * time.Second)
}

func handleShared(ev engine.Event, mu *sync.Mutex, digests map[string]hash.Hash, closed map[uint64]error,
	fail func(string, ...any)) {
	c := ev.Conn
	switch ev.Kind {
	case engine.EventAccept:
		mu.Lock()
		digests[c.Peer().String()] = sha256.New()
		mu.Unlock()
	case engine.EventRecv:
		mu.Lock()
		d := digests[c.Peer().String()]
		mu.Unlock()
		d.Write(ev.Data) // this poller alone handles c now
		if err := c.Send(ev.Data); err != nil {
			fail("send: %v", err)
		}
	case engine.EventEOF:
		c.Close()
	case engine.EventClose:
		mu.Lock()
		if _, twice := closed[c.ID()]; twice {
			mu.Unlock()
			fail("connection %d closed twice", c.ID())
			return
		}
		closed[c.ID()] = ev.Err
		mu.Unlock()
	case engine.EventSend, engine.EventDrain:
	default:
		fail("event of kind %v", ev.Kind)
	}
}
