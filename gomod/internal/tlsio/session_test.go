package tlsio

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"
)

var versions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// noGoroutinesLeft checks, when the test ends, that its goroutines are
// gone (the handshakes' included).
func noGoroutinesLeft(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// drain reads s until ErrWouldBlock; the plaintext is appended to *got.
func drain(t *testing.T, s *Session, got *[]byte) error {
	buf := make([]byte, 4096)
	for {
		n, err := s.Read(buf)
		*got = append(*got, buf[:n]...)
		if errors.Is(err, ErrWouldBlock) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// TestEchoWithAStockClient: a Session as the server of crypto/tls's own
// client over a socket-like pipe, the way the engine will run it: a
// "worker" goroutine feeds what arrives, reads until ErrWouldBlock and
// echoes each piece of plaintext with Write. TLS 1.2 and 1.3, with ALPN.
func TestEchoWithAStockClient(t *testing.T) {
	pki := newPKI(t)
	for name, v := range versions {
		t.Run(name, func(t *testing.T) {
			noGoroutinesLeft(t)
			cli, srv := net.Pipe()
			defer cli.Close()
			defer srv.Close()
			s := Server(pki.server(v), func(b []byte) error { _, err := srv.Write(b); return err })
			pool := NewPool(2)
			events := make(chan error, 16)
			s.Handshake(pool, 10*time.Second, func(err error) { events <- err })
			arrived := make(chan []byte)
			go func() { // the socket's receives
				defer close(arrived)
				for {
					b := make([]byte, 1500)
					n, err := srv.Read(b)
					if err != nil {
						return
					}
					arrived <- b[:n]
				}
			}()
			worker := make(chan error, 1)
			go func() {
				var plain []byte
				for {
					select {
					case err := <-events:
						if err != nil {
							worker <- err
							return
						}
					case b, ok := <-arrived:
						if !ok {
							worker <- nil
							return
						}
						s.Feed(b)
					}
					plain = plain[:0]
					if err := drain(t, s, &plain); err != nil {
						worker <- err
						return
					}
					if len(plain) > 0 {
						if _, err := s.Write(plain); err != nil {
							worker <- err
							return
						}
					}
				}
			}()

			c := tls.Client(cli, pki.client())
			msg := bytes.Repeat([]byte("0123456789abcdef"), 100<<10/16) // 100 KiB: many records
			go c.Write(msg)
			got := make([]byte, len(msg))
			cli.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo: %v", err)
			}
			st := c.ConnectionState()
			if st.Version != v || st.NegotiatedProtocol != "pyiocp" || !s.Ready() || s.State().NegotiatedProtocol != "pyiocp" {
				t.Errorf("version %x alpn %q ready %v", st.Version, st.NegotiatedProtocol, s.Ready())
			}
			c.Close()
			srv.Close()
			if err := <-worker; err != nil && !errors.Is(err, io.EOF) {
				t.Errorf("worker: %v", err)
			}
		})
	}
}

// pair connects a client and a server Session in memory: each one's out
// feeds the other. Once both handshakes are done, the client's records go
// to wire instead, when it is not nil.
func pair(t *testing.T, pki testPKI, v uint16, wire *bytes.Buffer) (cli, srv *Session) {
	t.Helper()
	var mu sync.Mutex
	capturing := false
	srv = Server(pki.server(v), func(b []byte) error { cli.Feed(b); return nil })
	cli = Client(pki.client(), func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if capturing {
			wire.Write(b)
		} else {
			srv.Feed(b)
		}
		return nil
	})
	pool := NewPool(2)
	done := make(chan error, 2)
	srv.Handshake(pool, 10*time.Second, func(err error) { done <- err })
	cli.Handshake(pool, 10*time.Second, func(err error) { done <- err })
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	capturing = wire != nil
	mu.Unlock()
	return cli, srv
}

// TestRecordsFedByteByByte: every split of the ciphertext, down to one
// byte at a time, gives the same plaintext, in order, and reads never
// wait; the client takes TLS 1.3's post-handshake tickets the same way.
func TestRecordsFedByteByByte(t *testing.T) {
	pki := newPKI(t)
	for name, v := range versions {
		t.Run(name, func(t *testing.T) {
			noGoroutinesLeft(t)
			var wire bytes.Buffer
			cli, srv := pair(t, pki, v, &wire)
			msg := bytes.Repeat([]byte("record "), 7000) // 49 KB: four records
			if _, err := cli.Write(msg); err != nil {
				t.Fatal(err)
			}
			ct := wire.Bytes()
			var got []byte
			for i := range ct {
				srv.Feed(ct[i : i+1])
				if err := drain(t, srv, &got); err != nil {
					t.Fatalf("at byte %d: %v", i, err)
				}
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("got %d bytes, want %d", len(got), len(msg))
			}
			if srv.Buffered() != 0 {
				t.Errorf("%d bytes left", srv.Buffered())
			}
			// The server's tickets (TLS 1.3) reached the client after its
			// handshake; reading them gives no plaintext and does not wait.
			var none []byte
			if err := drain(t, cli, &none); err != nil || len(none) != 0 {
				t.Errorf("client read %q, %v", none, err)
			}
		})
	}
}

// TestCloseNotify: CloseWrite's close_notify reads as io.EOF at the
// other end, after the plaintext before it; the peer's end of stream in
// the middle of a record is an error, not a clean end.
func TestCloseNotify(t *testing.T) {
	pki := newPKI(t)
	noGoroutinesLeft(t)
	var wire bytes.Buffer
	cli, srv := pair(t, pki, tls.VersionTLS13, &wire)
	cli.Write([]byte("last words"))
	if err := cli.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	srv.Feed(wire.Bytes())
	var got []byte
	if err := drain(t, srv, &got); !errors.Is(err, io.EOF) || string(got) != "last words" {
		t.Fatalf("%q, %v", got, err)
	}

	wire.Reset()
	cli, srv = pair(t, pki, tls.VersionTLS13, &wire)
	cli.Write([]byte("cut short"))
	srv.Feed(wire.Bytes()[:wire.Len()-3])
	srv.FeedEOF()
	got = got[:0]
	if err := drain(t, srv, &got); err == nil || errors.Is(err, io.EOF) || len(got) != 0 {
		t.Fatalf("a record cut by the end of stream: %q, %v", got, err)
	}
}
