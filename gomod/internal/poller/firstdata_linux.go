package poller

import (
	"time"

	"golang.org/x/sys/unix"
)

// Accepts that wait for the peer's first bytes, on Linux: the kernel keeps
// a connection whose peer has sent nothing out of the accept queue
// (TCP_DEFER_ACCEPT, in whole seconds); a peer still silent after that is
// handed over at its next ACK, and the engine's accept timeout applies.

// DeferAccept sets that on listening socket s, for timeout: done when the
// listener is made, before any peer can connect (the backends' FirstData
// then has nothing left to do).
func DeferAccept(s Sock, timeout time.Duration) error {
	return unix.SetsockoptInt(s, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, max(1, seconds(timeout)))
}

func (p *epoll) FirstData(Ref, time.Duration) (time.Duration, error) { return 0, nil }

func (p *epoll) SweepAccepts(Ref) {}

func (p *uring) FirstData(Ref, time.Duration) (time.Duration, error) { return 0, nil }

func (p *uring) SweepAccepts(Ref) {}
