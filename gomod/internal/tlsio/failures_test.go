package tlsio

import (
	"bytes"
	"crypto/tls"
	"errors"
	"sync"
	"testing"
	"time"
)

// handshakeWith starts a server handshake and returns its result channel.
func handshakeWith(s *Session, pool *Pool, timeout time.Duration) chan error {
	done := make(chan error, 1)
	s.Handshake(pool, timeout, func(err error) { done <- err })
	return done
}

func waitDone(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the handshake did not end")
		return nil
	}
}

// TestHandshakeFailures: a peer that sends garbage fails at once; one
// that stalls mid-handshake times out; a session closed mid-handshake
// ends it. Each failed session reads its error, and no goroutine stays.
func TestHandshakeFailures(t *testing.T) {
	pki := newPKI(t)
	noGoroutinesLeft(t)
	pool := NewPool(4)
	discard := func([]byte) error { return nil }

	s := Server(pki.server(tls.VersionTLS13), discard)
	done := handshakeWith(s, pool, 10*time.Second)
	s.Feed(bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 4))
	if err := waitDone(t, done); err == nil || errors.Is(err, ErrHandshakeTimeout) {
		t.Errorf("garbage: %v", err)
	}
	if _, err := s.Read(make([]byte, 10)); err == nil || errors.Is(err, ErrWouldBlock) {
		t.Errorf("read after a failed handshake: %v", err)
	}

	// A client's first flight, cut in the middle: the server waits for
	// the rest until the timeout.
	flights := make(chan []byte, 4)
	c := Client(pki.client(), func(b []byte) error { flights <- bytes.Clone(b); return nil })
	cdone := handshakeWith(c, pool, 10*time.Second)
	hello := <-flights
	c.Close()
	waitDone(t, cdone)
	s = Server(pki.server(tls.VersionTLS13), discard)
	start := time.Now()
	done = handshakeWith(s, pool, 200*time.Millisecond)
	s.Feed(hello[:len(hello)/2])
	if err := waitDone(t, done); !errors.Is(err, ErrHandshakeTimeout) || time.Since(start) < 200*time.Millisecond {
		t.Errorf("stalled: %v after %v", err, time.Since(start))
	}

	s = Server(pki.server(tls.VersionTLS13), discard)
	done = handshakeWith(s, pool, 0)
	s.Close()
	if err := waitDone(t, done); err == nil {
		t.Error("closed mid-handshake: no error")
	}
	deadline := time.Now().Add(5 * time.Second)
	for pool.Running() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // a goroutine leaves the pool just after its done
	}
	if pool.Running() != 0 {
		t.Errorf("%d pool goroutines still running", pool.Running())
	}
}

// TestPoolBound: handshakes beyond the pool's size wait for a goroutine
// instead of taking one each, and all of them end.
func TestPoolBound(t *testing.T) {
	noGoroutinesLeft(t)
	pool := NewPool(2)
	var mu sync.Mutex
	running, most := 0, 0
	release := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		pool.Go(func() {
			defer wg.Done()
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			<-release
			mu.Lock()
			running--
			mu.Unlock()
		})
	}
	time.Sleep(50 * time.Millisecond)
	if r := pool.Running(); r != 2 {
		t.Errorf("%d running, want 2", r)
	}
	close(release)
	wg.Wait()
	if most != 2 {
		t.Errorf("at most %d at once, want 2", most)
	}
}
