package tlsio

import (
	"crypto/tls"
	"sync"
	"testing"
	"time"
)

var fuzzPKI struct {
	once sync.Once
	pki  testPKI
}

// FuzzServerHandshakeInput feeds arbitrary bytes, in two pieces, to a
// server's handshake, then the end of stream: the handshake must end
// (with an error, as nothing here is a valid client), without a panic or
// a goroutine left waiting.
func FuzzServerHandshakeInput(f *testing.F) {
	f.Add([]byte("\x16\x03\x01\x00\x05hello"), 3)
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"), 0)
	f.Add([]byte("\x16\x03\x03\xff\xff"), 5)
	f.Fuzz(func(t *testing.T, input []byte, split int) {
		fuzzPKI.once.Do(func() { fuzzPKI.pki = newPKI(t) })
		pool := NewPool(1)
		s := Server(fuzzPKI.pki.server(tls.VersionTLS13), func([]byte) error { return nil })
		done := make(chan error, 1)
		s.Handshake(pool, 5*time.Second, func(err error) { done <- err })
		split = min(max(split, 0), len(input))
		s.Feed(input[:split])
		s.Feed(input[split:])
		s.FeedEOF()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("a handshake succeeded on arbitrary input")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the handshake did not end at the end of stream")
		}
		var buf [16]byte
		s.Read(buf[:])
	})
}
