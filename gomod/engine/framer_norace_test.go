//go:build !race

package engine

import "testing"

// Sending a frame allocates nothing: the header is built on the stack.
func TestSendFrameNoAllocation(t *testing.T) {
	var hdr [8]byte
	lp, l := &LengthPrefixed{HeaderSize: 4, MaxSize: 100}, &Lines{MaxLine: 100, Terminator: []byte("\r\n")}
	payload := []byte("a frame")
	var sink int
	if n := testing.AllocsPerRun(100, func() {
		for _, f := range []Framing{lp, l} {
			before, after, _ := encodeFrame(f, payload, &hdr)
			sink += len(before) + len(after)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per frame", n)
	}
	_ = sink
}
