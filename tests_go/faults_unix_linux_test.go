package engine_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestFaultUnixPeers: peers of every kind at once on a Unix domain
// listener: echo clients checking every byte, downloads closed with the
// server's stream unread (the server's next write fails), uploads closed
// mid-stream, and peers that connect and leave at once; an echo client on
// the same listener all along. Every connection ends exactly once, the
// interrupted downloads with an OS error; nothing is left behind, the
// socket file included.
func TestFaultUnixPeers(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "unix_peers", backend)
		each := scale(f, "peers of each kind", 50, 2000)
		path := filepath.Join(t.TempDir(), "faults.sock")
		h := newModal()
		m := newManager(t, h, backend, engine.WithWorkers(2), engine.WithSendBufferLimit(1<<20))
		if _, err := m.ListenUnix(path, 0); err != nil {
			t.Fatal(err)
		}
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		addr := "unix:" + path
		stopControl := startControlClient(t, addr)
		var down, up atomic.Int64
		runClients(t, 8, func(i int) error {
			rng := rand.New(rand.NewPCG(uint64(i), 11))
			for k := i; k < 4*each; k += 8 {
				if err := unixPeer(addr, k%4, 64<<10+rng.IntN(2<<20), &down, &up); err != nil {
					return fmt.Errorf("peer %d (kind %d): %w", k, k%4, err)
				}
			}
			return nil
		})
		settle(t, "every peer's connection closed", func() bool {
			return h.opened.Load() == int64(4*each+1) && int64(h.closedCount()) == int64(4*each)
		})
		lat := stopControl()
		settle(t, "the control connection closed", func() bool { return h.closedCount() == 4*each+1 })
		for _, err := range h.byMode(t, 'E') {
			if err != nil {
				t.Errorf("an echo connection closed with %v", err)
			}
		}
		interrupted := 0
		for _, err := range h.byMode(t, 'D') {
			if err != nil && !isErrno(err) {
				t.Errorf("a download closed with %v, want an OS error or none", describe(err))
			}
			if err != nil {
				interrupted++
			}
		}
		if interrupted == 0 {
			t.Error("no interrupted download ended with an error")
		}
		closeManager(t, m)
		if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the socket file outlived the manager: %v", err)
		}
		s := m.Stats()
		if s.Accepted != uint64(4*each+1) || s.Closed != s.Accepted {
			t.Errorf("stats: %+v", s)
		}
		n, worst, mean := lat.get()
		f.sized("%d peers of each of 4 kinds (echo, download left unread, upload cut, connect and leave) "+
			"from 8 threads; one control echo client", each)
		f.note("%.1f MiB read by downloads, %.1f MiB uploaded; %d of %d downloads ended with an error; "+
			"control: %d round trips, worst %s, mean %s", float64(down.Load())/(1<<20), float64(up.Load())/(1<<20),
			interrupted, each, n, ms(worst), ms(mean))
	})
}

// unixPeer is one peer of kind k: 0 an echo of n bytes, checked; 1 a
// download of n bytes, then a close with the rest unread; 2 an upload of n
// bytes, then a close; 3 a connect, one byte, a close.
func unixPeer(addr string, kind, n int, down, up *atomic.Int64) error {
	c, err := dialAny(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(faultWait))
	mode := []byte{'E', 'D', 'U', 'Q'}[kind]
	if _, err := c.Write([]byte{mode}); err != nil {
		return err
	}
	switch mode {
	case 'E':
		msg := payloadBlock[:min(n, 256<<10)]
		go c.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			return err
		}
		if !bytes.Equal(got, msg) {
			return errors.New("the echo differs")
		}
	case 'D':
		k, err := io.CopyN(io.Discard, c, int64(n))
		down.Add(k)
		return err
	case 'U':
		k, err := c.Write(payloadBlock[:min(n, len(payloadBlock))])
		up.Add(int64(k))
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return nil // the server may have closed first: not this peer's fault
		}
		return err
	}
	return nil
}
