package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies in nanoseconds in log-linear buckets: values
// below 64 exactly, above that 64 buckets per power of two, so a reported
// percentile (the bucket's midpoint) is within 1/128 (< 1%) of the true
// value. Each connection owns one (no locking per message); Run merges them.
// Chunks (one per power of two) are allocated on first use, so a connection
// whose latencies span a few octaves holds a few KiB.
const (
	subBits   = 6
	subCount  = 1 << subBits
	numChunks = 33 // top chunk ends at 2^38 ns (~275 s); larger values clamp
)

type histogram struct {
	chunks [numChunks]*[subCount]uint64
	count  uint64
	sum    uint64 // nanoseconds, for the mean
	min    uint64
	max    uint64
}

func bucketOf(v uint64) (chunk, sub int) {
	c := bits.Len64(v) - subBits
	if c <= 0 {
		return 0, int(v)
	}
	if c >= numChunks {
		return numChunks - 1, subCount - 1
	}
	return c, int(v>>(c-1)) - subCount
}

// bucketRange is the half-open value range [lo, lo+width) of a bucket.
func bucketRange(chunk, sub int) (lo, width uint64) {
	if chunk == 0 {
		return uint64(sub), 1
	}
	return uint64(subCount+sub) << (chunk - 1), 1 << (chunk - 1)
}

func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	c, s := bucketOf(v)
	b := h.chunks[c]
	if b == nil {
		b = new([subCount]uint64)
		h.chunks[c] = b
	}
	b[s]++
	if h.count == 0 || v < h.min {
		h.min = v
	}
	h.max = max(h.max, v)
	h.count++
	h.sum += v
}

func (h *histogram) merge(o *histogram) {
	if o.count == 0 {
		return
	}
	for c, ob := range o.chunks {
		if ob == nil {
			continue
		}
		b := h.chunks[c]
		if b == nil {
			b = new([subCount]uint64)
			h.chunks[c] = b
		}
		for s, n := range ob {
			b[s] += n
		}
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.count += o.count
	h.sum += o.sum
}

// quantile returns the value at fraction q (0..1) of the recorded values: the
// midpoint of the bucket holding that rank, kept within [min, max].
func (h *histogram) quantile(q float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.count)))
	rank = min(max(rank, 1), h.count)
	var seen uint64
	for c, b := range h.chunks {
		if b == nil {
			continue
		}
		for s, n := range b {
			seen += n
			if seen >= rank {
				lo, w := bucketRange(c, s)
				v := lo + w/2
				return time.Duration(min(max(v, h.min), h.max))
			}
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / h.count)
}
