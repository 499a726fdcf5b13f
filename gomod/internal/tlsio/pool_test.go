package tlsio

import (
	"testing"
	"time"
)

// TestPoolParkFreesTheSlot: a goroutine waiting for input holds no slot:
// with one slot, a parked handshake lets the next one run, and gets the
// slot back only once that one is done.
func TestPoolParkFreesTheSlot(t *testing.T) {
	p := NewPool(1)
	parked, input, resumed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	p.Go(func() {
		p.Park()
		close(parked)
		<-input
		p.Unpark()
		close(resumed)
	})
	<-parked
	ran, release := make(chan struct{}), make(chan struct{})
	p.Go(func() { close(ran); <-release })
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("a parked goroutine kept the only slot")
	}
	close(input)
	select {
	case <-resumed:
		t.Fatal("resumed while the slot was taken")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-resumed:
	case <-time.After(10 * time.Second):
		t.Fatal("never resumed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.Running() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots held when idle", p.Running())
		}
		time.Sleep(time.Millisecond)
	}
}
