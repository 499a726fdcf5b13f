package poller

import "unsafe"

// slabPool is a free list of T values outside the Go heap, grown a 64 KiB
// slab at a time (AllocMemory) and released only with the port, when no
// operation is outstanding: the kernel writes into them long after the
// call that posted them returned, so the collector must neither move nor
// free them meanwhile. T holds no Go pointer.
type slabPool[T any] struct {
	slabs [][]byte
	free  []*T
}

const slabSize = 64 << 10

func (sp *slabPool[T]) get() (*T, error) {
	if len(sp.free) == 0 {
		slab, err := AllocMemory(slabSize)
		if err != nil {
			return nil, err
		}
		sp.slabs = append(sp.slabs, slab)
		size := int(unsafe.Sizeof(*new(T)))
		for off := 0; off+size <= len(slab); off += size {
			sp.free = append(sp.free, (*T)(unsafe.Pointer(&slab[off])))
		}
	}
	x := sp.free[len(sp.free)-1]
	sp.free = sp.free[:len(sp.free)-1]
	return x, nil
}

func (sp *slabPool[T]) put(x *T) { sp.free = append(sp.free, x) }

// held is how many values are out of the pool.
func (sp *slabPool[T]) held() int {
	return len(sp.slabs)*(slabSize/int(unsafe.Sizeof(*new(T)))) - len(sp.free)
}

func (sp *slabPool[T]) release() {
	for _, s := range sp.slabs {
		FreeMemory(s)
	}
	sp.slabs, sp.free = nil, nil
}
