package engine_test

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// udpEcho is a handler that sends every datagram back where it came
// from, and records the errors it is told of.
type udpEcho struct {
	engine.NopHandler
	mu     sync.Mutex
	errs   []error
	errCh  chan error
	onData func(e *engine.Endpoint, data []byte, addr netip.AddrPort)
}

func newUDPEcho() *udpEcho { return &udpEcho{errCh: make(chan error, 16)} }

func (h *udpEcho) OnDatagram(e *engine.Endpoint, data []byte, addr netip.AddrPort) {
	if h.onData != nil {
		h.onData(e, data, addr)
		return
	}
	if err := e.SendTo(data, addr); err != nil {
		h.OnDatagramError(e, addr, err)
	}
}

func (h *udpEcho) OnDatagramError(_ *engine.Endpoint, _ netip.AddrPort, err error) {
	h.mu.Lock()
	h.errs = append(h.errs, err)
	h.mu.Unlock()
	select {
	case h.errCh <- err:
	default:
	}
}

// bindUDP binds a UDP endpoint on m at addr.
func bindUDP(t *testing.T, m *engine.Manager, addr string, opts ...engine.ListenOption) *engine.Endpoint {
	t.Helper()
	e, err := m.BindUDP(netip.MustParseAddrPort(addr), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// udpPeer is the other end of the tests' datagrams: a plain blocking UDP
// socket (udp_peer_*_test.go: Go's net package, or Winsock where Wine
// refuses what the net package asks of a UDP socket).
type udpPeer interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	SetReadDeadline(t time.Time) error
	Addr() netip.AddrPort
	Close() error
}

// newUDPPeer opens a peer on the loopback of network (udp4, udp6),
// closed when the test ends.
func newUDPPeer(t *testing.T, network string) udpPeer {
	t.Helper()
	host := "127.0.0.1:0"
	if network == "udp6" {
		host = "[::1]:0"
	}
	p, err := openUDPPeer(netip.MustParseAddrPort(host))
	if err != nil {
		t.Fatal(err)
	}
	p.SetReadDeadline(time.Now().Add(2 * waitBound))
	t.Cleanup(func() { p.Close() })
	return p
}

// waitDone waits for e's socket to be closed.
func waitDone(t *testing.T, e *engine.Endpoint) {
	t.Helper()
	select {
	case <-e.Done():
	case <-time.After(waitBound):
		t.Fatalf("endpoint %v not closed", e)
	}
}
