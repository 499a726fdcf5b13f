package poller

import (
	"errors"
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

// readEnd reads from cli until the stream ends and returns how it ended.
func readEnd(t *testing.T, cli net.Conn) error {
	t.Helper()
	cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	for {
		if _, err := cli.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the socket was not closed within 5 s")
			}
			return err
		}
	}
}

// TestReleaseCloses: a released socket is closed by the next Wait at the
// latest: the peer reads the end of the stream.
func TestReleaseCloses(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		s, cli := pair(t, p)
		p.Release(s, false)
		p.Wait(make([]Completion, 4), 0)
		if err := readEnd(t, cli); err != io.EOF {
			t.Fatalf("the peer read %v, want EOF", err)
		}
	})
}

// TestCloseMakesQueuedReleases: a socket released just before the port
// closes, with no Wait between, is closed all the same.
func TestCloseMakesQueuedReleases(t *testing.T) {
	for _, name := range Backends() {
		t.Run(name, func(t *testing.T) {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			p, _, err := Open(name, Config{FixedThread: true})
			if err != nil {
				t.Fatal(err)
			}
			s, cli := pair(t, p)
			p.Release(s, false)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if err := readEnd(t, cli); err != io.EOF {
				t.Fatalf("the peer read %v, want EOF", err)
			}
		})
	}
}
