package engine

import "sync"

// dgramBuf holds one queued datagram's copy. The buffers come from pools
// by power-of-two size (256 B to 64 KiB) and go back once the datagram is
// sent or dropped, so SendTo allocates nothing once the pools are warm.
type dgramBuf struct{ b []byte }

const (
	minDgramBuf  = 256
	dgramClasses = 9 // 256 << 8 = 64 KiB, over MaxDatagram6
)

var dgramPools [dgramClasses]sync.Pool

func dgramClass(n int) int {
	c := 0
	for minDgramBuf<<c < n {
		c++
	}
	return c
}

// copyDatagram returns a pooled buffer holding a copy of data (nil for an
// empty datagram, which needs none).
func copyDatagram(data []byte) *dgramBuf {
	if len(data) == 0 {
		return nil
	}
	c := dgramClass(len(data))
	d, _ := dgramPools[c].Get().(*dgramBuf)
	if d == nil {
		d = &dgramBuf{b: make([]byte, 0, minDgramBuf<<c)}
	}
	d.b = append(d.b[:0], data...)
	return d
}

// free gives d back to its pool; d (possibly nil) is not used again.
func (d *dgramBuf) free() {
	if d != nil {
		dgramPools[dgramClass(cap(d.b))].Put(d)
	}
}
