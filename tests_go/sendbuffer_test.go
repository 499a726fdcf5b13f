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

// TestBufferFullAndDrain: against a peer that stops reading, Send fails
// with ErrBufferFull (queueing nothing) before Pending passes the limit;
// OnDrain follows once when the peer reads again, and every byte arrives
// in order.
func TestBufferFullAndDrain(t *testing.T) {
	const limit = 256 << 10
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		var drainedAbove atomic.Int32
		var filled atomic.Bool // the test has stopped sending
		r.onDrain = func(c *engine.Conn) {
			// While the loop below still sends, Pending can have grown again
			// between the drain and this call: judge only the drain owed
			// once the buffer is full and nothing more is sent.
			if filled.Load() && c.Pending() > limit/4 {
				drainedAbove.Add(1)
			}
		}
		_, cli, srv := serveOne(t, r, backend, engine.WithSendBufferLimit(limit))
		var sent []byte
		chunk := 10000
		full := false
		for i := 0; i < 10000 && !full; i++ {
			msg := pattern(chunk)
			msg[0] = byte(i)
			before := srv.Pending()
			err := srv.Send(msg)
			switch {
			case errors.Is(err, engine.ErrBufferFull):
				full = true
				if p := srv.Pending(); p > before || p+chunk <= limit {
					t.Errorf("BufferFull at pending %d (before %d) for %d bytes", p, before, chunk)
				}
			case err != nil:
				t.Fatal(err)
			default:
				sent = append(sent, msg...)
			}
			if p := srv.Pending(); p > limit {
				t.Fatalf("pending %d over the limit %d", p, limit)
			}
		}
		if !full {
			t.Fatal("never got ErrBufferFull from a peer that does not read")
		}
		filled.Store(true)
		// Drains before the buffer filled up are fine (pending passed the
		// low watermark and fell back); from now on exactly one is owed.
		for len(r.drains) > 0 {
			<-r.drains
		}
		got := make([]byte, len(sent))
		if _, err := io.ReadFull(cli, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != string(sent) {
			t.Fatal("bytes differ or are out of order")
		}
		select {
		case <-r.drains:
		case <-time.After(5 * time.Second):
			t.Fatal("no OnDrain after the buffer drained")
		}
		select {
		case <-r.drains:
			t.Fatal("OnDrain twice")
		case <-time.After(50 * time.Millisecond):
		}
		eventually(t, "OnSend counts to add up", func() bool { return r.sentTo(srv.ID()) == len(sent) })
		if n := drainedAbove.Load(); n != 0 {
			t.Errorf("%d OnDrain with pending above the low watermark", n)
		}
	})
}

// TestConcurrentSendNoInterleave: 8 goroutines send framed messages to one
// connection; each Send's bytes arrive contiguous and each goroutine's in
// order.
func TestConcurrentSendNoInterleave(t *testing.T) {
	const senders, each = 8, 300
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		_, cli, srv := serveOne(t, r, backend, engine.WithSendBufferLimit(64<<20))
		var wg sync.WaitGroup
		for s := 0; s < senders; s++ {
			wg.Add(1)
			go func(s int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					if err := srv.Send(frame(s, i)); err != nil {
						t.Error(err)
						return
					}
				}
			}(s)
		}
		next := make([]int, senders)
		for n := 0; n < senders*each; n++ {
			s, i, err := readFrame(cli)
			if err != nil {
				t.Fatalf("frame %d: %v", n, err)
			}
			if i != next[s] {
				t.Fatalf("sender %d: message %d after %d", s, i, next[s]-1)
			}
			next[s]++
		}
		wg.Wait()
	})
}

// frame is a message of sender s, number i: a header and a body whose bytes
// all name (s, i), so interleaving with another message is detected.
func frame(s, i int) []byte {
	size := 100 + (s*131+i*17)%3000
	b := make([]byte, 8+size)
	b[0], b[1], b[2], b[3] = byte(s), byte(i>>8), byte(i), 0xAB
	b[4], b[5], b[6], b[7] = byte(size>>24), byte(size>>16), byte(size>>8), byte(size)
	for k := 8; k < len(b); k++ {
		b[k] = byte(s*31 + i)
	}
	return b
}

func readFrame(c net.Conn) (s, i int, err error) {
	var h [8]byte
	if _, err = io.ReadFull(c, h[:]); err != nil {
		return
	}
	if h[3] != 0xAB {
		return 0, 0, errors.New("bad header: interleaved")
	}
	s, i = int(h[0]), int(h[1])<<8|int(h[2])
	size := int(h[4])<<24 | int(h[5])<<16 | int(h[6])<<8 | int(h[7])
	body := make([]byte, size)
	if _, err = io.ReadFull(c, body); err != nil {
		return
	}
	for _, b := range body {
		if b != byte(s*31+i) {
			return 0, 0, errors.New("body bytes of another message: interleaved")
		}
	}
	return
}
