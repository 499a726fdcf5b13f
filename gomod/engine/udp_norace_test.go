//go:build !race

package engine

import (
	"net/netip"
	"testing"
)

// TestSendToNoAllocation: once the pools are warm, SendTo allocates
// nothing: its copies are pooled buffers, given back when sent.
func TestSendToNoAllocation(t *testing.T) {
	m, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(0)
	e, err := m.BindUDP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	to := netip.MustParseAddrPort("127.0.0.1:9")
	small, large := make([]byte, 100), make([]byte, MaxDatagram)
	round := func() {
		for range 8 {
			if err := e.SendTo(small, to); err != nil {
				t.Fatal(err)
			}
			if err := e.SendTo(large, to); err != nil {
				t.Fatal(err)
			}
		}
		e.mu.Lock()
		e.w.sentDatagrams(e, len(e.queue)) // as the worker does once they are sent
		e.mu.Unlock()
	}
	round()
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Fatalf("%v allocations per 16 SendTo calls", n)
	}
}
