package poller

import (
	"errors"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReleaseAborts: a socket released with abort is closed with a reset,
// and its descriptor is gone after the next Wait.
func TestReleaseAborts(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		s, cli := pair(t, p)
		p.Release(s, true)
		p.Wait(make([]Completion, 4), 0)
		if _, err := unix.FcntlInt(uintptr(s.Sock()), unix.F_GETFD, 0); err != unix.EBADF {
			t.Fatalf("descriptor %d after the Wait: %v, want EBADF", s.Sock(), err)
		}
		if err := readEnd(t, cli); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the peer read %v, want a reset", err)
		}
	})
}
