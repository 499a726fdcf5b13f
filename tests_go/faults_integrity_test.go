package engine_test

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// hashEcho echoes every byte and hashes what each connection sent. The
// peer's FIN ends its upload: the digest is kept by the peer's port (the
// client looks its own up) and the connection closes once the echo is out.
type hashEcho struct {
	engine.NopHandler
	mu      sync.Mutex
	digests map[uint16]upload
	closes  map[uint64]int
	errs    []error
	opened  atomic.Int64
}

type upload struct {
	n   int
	sum [32]byte
}

type connHash struct {
	h hash.Hash
	n int
}

func newHashEcho() *hashEcho {
	return &hashEcho{digests: map[uint16]upload{}, closes: map[uint64]int{}}
}

func (h *hashEcho) OnOpen(c *engine.Conn) {
	h.opened.Add(1)
	c.Context = &connHash{h: sha256.New()}
}

func (h *hashEcho) OnRecv(c *engine.Conn, data []byte) {
	ch := c.Context.(*connHash)
	ch.h.Write(data)
	ch.n += len(data)
	if err := c.Send(data); err != nil {
		h.fail(err)
	}
}

func (h *hashEcho) OnEOF(c *engine.Conn) {
	ch := c.Context.(*connHash)
	var u upload
	u.n = ch.n
	ch.h.Sum(u.sum[:0])
	h.mu.Lock()
	h.digests[c.Peer().Port()] = u
	h.mu.Unlock()
	c.Close()
}

func (h *hashEcho) OnClose(c *engine.Conn, err error) {
	h.mu.Lock()
	h.closes[c.ID()]++
	h.mu.Unlock()
	if err != nil {
		h.fail(err)
	}
}

func (h *hashEcho) fail(err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
}

func (h *hashEcho) digest(port uint16) (upload, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u, ok := h.digests[port]
	return u, ok
}

// TestFaultIntegrity: connections at once, each sending a random size from
// 1 B to 1 MiB (the first 1 B, the second 1 MiB); the server hashes what
// arrived and echoes it; SHA-256 is compared both ways. Zero mismatches.
func TestFaultIntegrity(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "integrity", backend)
		conns := scale(f, "connections", 100, 1000)
		h := newHashEcho()
		m, addr := serve(t, h, backend, engine.WithWorkers(2))
		rng := rand.New(rand.NewPCG(1, uint64(conns)))
		sizes := make([]int, conns)
		total := 0
		for i := range sizes {
			switch i {
			case 0:
				sizes[i] = 1
			case 1:
				sizes[i] = 1 << 20
			default:
				sizes[i] = 1 + rng.IntN(1<<20)
			}
			total += sizes[i]
		}
		f.sized("%d connections at once, 1 B-1 MiB each (uniform), %s each way", conns, mib(int64(total)))
		var up, down, failed atomic.Int64
		var wg sync.WaitGroup
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := integrityClient(h, addr, uint64(i), sizes[i], &up, &down); err != nil {
					failed.Add(1)
					t.Errorf("connection %d (%d bytes): %v", i, sizes[i], err)
				}
			}()
		}
		wg.Wait()
		settle(t, "every connection closed", func() bool { return m.Stats().Closed == uint64(conns) })
		h.mu.Lock()
		for id, n := range h.closes {
			if n != 1 {
				t.Errorf("connection %d closed %d times", id, n)
			}
		}
		for _, err := range h.errs {
			t.Errorf("server: %v", err)
		}
		h.mu.Unlock()
		s := m.Stats()
		if s.BytesIn != uint64(total) || s.BytesOut != uint64(total) {
			t.Errorf("bytes in %d, out %d, want %d", s.BytesIn, s.BytesOut, total)
		}
		f.set("mismatches", up.Load()+down.Load())
		f.set("failed", failed.Load())
		f.note("mismatches: %d client->server, %d server->client", up.Load(), down.Load())
	})
}

// integrityClient sends payload seed of n bytes, half-closes, reads the
// echo to the end and checks both digests.
func integrityClient(h *hashEcho, addr string, seed uint64, n int, up, down *atomic.Int64) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	p, sum := payload(seed, n)
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(p)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	back := sha256.New()
	got, err := io.Copy(back, c)
	if err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return err
	}
	var echoed [32]byte
	back.Sum(echoed[:0])
	if got != int64(n) || echoed != sum {
		down.Add(1)
		return errors.New("echo differs from what was sent")
	}
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	u, ok := h.digest(port)
	if !ok {
		return errors.New("the server recorded no upload for this connection")
	}
	if u.n != n || u.sum != sum {
		up.Add(1)
		return errors.New("what the server received differs from what was sent")
	}
	return nil
}
