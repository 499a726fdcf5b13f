package engine_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
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
	serverLog
	got    uploads
	opened atomic.Int64
}

func (h *hashEcho) OnOpen(c *engine.Conn) {
	h.opened.Add(1)
	c.Context = newConnHash()
}

func (h *hashEcho) OnRecv(c *engine.Conn, data []byte) {
	c.Context.(*connHash).add(data)
	h.check(c.Send(data))
}

func (h *hashEcho) OnEOF(c *engine.Conn) {
	h.got.put(c, c.Context.(*connHash).upload())
	c.Close()
}

func (h *hashEcho) OnClose(c *engine.Conn, err error) {
	h.closed(c)
	h.check(err)
}

// upload is what one connection delivered: how many bytes, and their
// SHA-256.
type upload struct {
	n   int
	sum [32]byte
}

// connHash hashes what one connection delivers.
type connHash struct {
	h hash.Hash
	n int
}

func newConnHash() *connHash { return &connHash{h: sha256.New()} }

func (ch *connHash) add(data []byte) {
	ch.h.Write(data)
	ch.n += len(data)
}

func (ch *connHash) upload() upload {
	u := upload{n: ch.n}
	ch.h.Sum(u.sum[:0])
	return u
}

// uploads keeps each connection's upload by its peer's port, where the
// peer's client looks its own up.
type uploads struct {
	mu     sync.Mutex
	byPort map[uint16]upload
}

func (u *uploads) put(c *engine.Conn, up upload) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.byPort == nil {
		u.byPort = map[uint16]upload{}
	}
	u.byPort[c.Peer().Port()] = up
}

func (u *uploads) get(port uint16) (upload, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	up, ok := u.byPort[port]
	return up, ok
}

// serverLog counts each connection's OnClose and keeps the errors a
// scenario's server met, from any worker, for the scenario's end.
type serverLog struct {
	mu     sync.Mutex
	closes map[uint64]int
	errs   []error
}

func (l *serverLog) closed(c *engine.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closes == nil {
		l.closes = map[uint64]int{}
	}
	l.closes[c.ID()]++
}

// check keeps err, unless nil.
func (l *serverLog) check(err error) {
	if err != nil {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	}
}

// report fails t for each connection closed other than once and for each
// error the server met.
func (l *serverLog) report(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, n := range l.closes {
		if n != 1 {
			t.Errorf("connection %d closed %d times", id, n)
		}
	}
	for _, err := range l.errs {
		t.Errorf("server: %s", describe(err))
	}
}

// TestFaultIntegrity: connections at once, each sending a random size from
// 1 B to 1 MiB (the first 1 B, the second 1 MiB); the server hashes what
// arrived and echoes it; SHA-256 is compared both ways. Zero mismatches.
func TestFaultIntegrity(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "integrity", backend)
		conns := scale(f, "connections", 100, 1000)
		h := &hashEcho{}
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
		runClients(t, conns, func(i int) error {
			err := integrityClient(h, addr, uint64(i), sizes[i], &up, &down)
			if err != nil {
				failed.Add(1)
				return fmt.Errorf("%d bytes: %w", sizes[i], err)
			}
			return nil
		})
		settle(t, "every connection closed", func() bool { return m.Stats().Closed == uint64(conns) })
		h.report(t)
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
	u, ok := h.got.get(localPort(c))
	if !ok {
		return errors.New("the server recorded no upload for this connection")
	}
	if u.n != n || u.sum != sum {
		up.Add(1)
		return errors.New("what the server received differs from what was sent")
	}
	return nil
}
