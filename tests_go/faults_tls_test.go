package engine_test

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestFaultTLSPeers: many full handshakes at once, while hostile peers of
// every kind come and the listener's certificate is reloaded under them.
// Every good client gets its echo; every hostile peer ends, never
// announced when its handshake failed; nothing is left behind.
//
// Hostile peers: garbage instead of a ClientHello, silence (the handshake
// timeout ends it), a handshake record cut short then FIN, a reset in the
// middle of a handshake record, and a reset in the middle of a record
// after the handshake (announced, then closed with an error).
func TestFaultTLSPeers(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "tls_peers", backend)
		good := scale(f, "full handshakes", 200, 10_000)
		bad := scale(f, "hostile peers of each kind", 10, 200)
		p := newTestPKI(t)
		certs := []*tls.Config{p.server("pyiocp.test"), p.server("pyiocp.test")}
		r := newEchoRecorder()
		r.discard, r.unlisted = true, true
		// The handshake timeout ends the silent peers; the full
		// handshakes must fit in it on a loaded machine under the race
		// detector, so it is not short (the silent peers wait together).
		m, l := serveTLS(t, r, backend, certs[0], 2*time.Second, engine.WithWorkers(2))
		addr := l.Addr().String()

		stopReload := make(chan struct{})
		var reloads atomic.Int64
		var reloader sync.WaitGroup
		reloader.Go(func() {
			for i := 1; ; i++ {
				select {
				case <-stopReload:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if err := l.ReloadTLS(certs[i%2]); err != nil {
					t.Error(err)
					return
				}
				reloads.Add(1)
			}
		})

		var midRecord atomic.Int64
		const workers = 8
		runClients(t, workers+5, func(i int) error {
			if i < workers {
				for k := i; k < good; k += workers {
					if err := tlsRoundTrip(addr, p.client("pyiocp.test", tls.VersionTLS13)); err != nil {
						return fmt.Errorf("handshake %d: %w", k, err)
					}
				}
				return nil
			}
			// Each kind's peers, hostileAtOnce at a time.
			sem := make(chan struct{}, hostileAtOnce)
			errs := make(chan error, bad)
			var peers sync.WaitGroup
			for range bad {
				sem <- struct{}{}
				peers.Go(func() {
					defer func() { <-sem }()
					if err := hostileTLSPeer(addr, i-workers, p, &midRecord); err != nil {
						errs <- err
					}
				})
			}
			peers.Wait()
			close(errs)
			return <-errs
		})
		close(stopReload)
		reloader.Wait()

		// Every hostile peer but those reset mid-record fails its
		// handshake; where AcceptEx drops a connection reset before it is
		// accepted (acceptDropsResets), the server may never see those
		// reset mid-handshake.
		failed, atLeast := uint64(4*bad), uint64(4*bad)
		if acceptDropsResets {
			atLeast = uint64(3 * bad)
		}
		settle(t, "every connection closed", func() bool {
			s := m.Stats()
			if s.Connections != 0 || s.TLSHandshakeErrors < atLeast || s.Closed != s.Accepted {
				return false
			}
			time.Sleep(100 * time.Millisecond) // and none is left to accept
			return m.Stats() == s
		})
		s := m.Stats()
		if s.TLSHandshakeErrors > failed {
			t.Errorf("%d failed handshakes, want at most %d", s.TLSHandshakeErrors, failed)
		}
		if s.Accepted != uint64(good)+uint64(bad) || s.TLSConnections != 0 || s.Stray != 0 {
			t.Errorf("stats: %+v", s)
		}
		withErr := 0
		r.mu.Lock()
		for _, err := range r.closeErr {
			if err != nil {
				withErr++
			}
		}
		r.mu.Unlock()
		if withErr < bad {
			t.Errorf("%d connections closed with an error, want the %d reset mid-record at least", withErr, bad)
		}
		f.sized("%d full handshakes (TLS 1.3, one echo each) from %d clients; %d hostile peers of each of 5 kinds; "+
			"the certificate reloaded every 5 ms", good, workers, bad)
		f.note("%d reloads; %d handshakes failed and none announced; %d connections reset mid-record closed with an error",
			reloads.Load(), s.TLSHandshakeErrors, withErr)
	})
}

// tlsRoundTrip makes a full handshake, echoes one message and closes.
func tlsRoundTrip(addr string, cfg *tls.Config) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: faultWait}, "tcp", addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(faultWait))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	b := make([]byte, 4)
	if _, err := io.ReadFull(c, b); err != nil {
		return err
	}
	if string(b) != "ping" {
		return fmt.Errorf("echo %q", b)
	}
	return nil
}

// hostileTLSPeer is one peer of kind k (0-4), waiting for the server to
// end it where the server must.
// hostileAtOnce is how many hostile peers of one kind are connected at once.
const hostileAtOnce = 20

func hostileTLSPeer(addr string, kind int, p *pki, midRecord *atomic.Int64) error {
	c, err := net.DialTimeout("tcp", addr, faultWait)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(faultWait))
	tcp := c.(*net.TCPConn)
	// A TLS handshake record's header claiming 512 bytes, and a few.
	cut := []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03}
	switch kind {
	case 0: // garbage
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	case 1: // silence: the handshake timeout ends it
	case 2: // a record cut short, then FIN
		c.Write(cut)
		tcp.CloseWrite()
	case 3: // reset mid-record, in the handshake
		c.Write(cut)
		tcp.SetLinger(0)
		return nil
	case 4: // reset mid-record, after the handshake
		tc := tls.Client(c, p.client("pyiocp.test", tls.VersionTLS13))
		tc.Write([]byte("ping")) // echoed: the server's handshake is over, the connection announced
		if _, err := io.ReadFull(tc, make([]byte, 4)); err != nil {
			return err
		}
		// A record header announcing 100 bytes of application data, and 10.
		c.Write([]byte{0x17, 0x03, 0x03, 0x00, 0x64, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
		midRecord.Add(1)
		tcp.SetLinger(0)
		return nil
	}
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("hostile peer %d: the server never ended it", kind)
	}
	return nil
}
