package loadgen

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

func TestHistogramQuantilesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var parts [4]histogram
	var all []time.Duration
	for i := range 100_000 {
		// Log-uniform over 1us..1s, spread over 4 histograms as if per connection.
		d := time.Duration(1e3 * math.Pow(10, rng.Float64()*6))
		parts[i%4].record(d)
		all = append(all, d)
	}
	var h histogram
	for i := range parts {
		h.merge(&parts[i])
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		want := all[int(q*float64(len(all)))-1]
		got := h.quantile(q)
		if diff := float64(got-want) / float64(want); diff > 0.01 || diff < -0.01 {
			t.Errorf("q%v = %v, want %v (%.2f%% off)", q, got, want, diff*100)
		}
	}
	if h.count != 100_000 || time.Duration(h.max) != all[len(all)-1] || time.Duration(h.min) != all[0] {
		t.Errorf("count %d min %d max %d", h.count, h.min, h.max)
	}
}

func TestHistogramBuckets(t *testing.T) {
	// Every value lies in the range of its bucket, and buckets are ordered.
	prevC, prevS := 0, -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 1 << 20, 1<<37 + 5, 1<<38 - 1} {
		c, s := bucketOf(v)
		lo, w := bucketRange(c, s)
		if v < lo || v >= lo+w {
			t.Errorf("%d in bucket (%d,%d) = [%d,%d)", v, c, s, lo, lo+w)
		}
		if c < prevC || (c == prevC && s < prevS) {
			t.Errorf("%d: bucket (%d,%d) not after (%d,%d)", v, c, s, prevC, prevS)
		}
		prevC, prevS = c, s
	}
	if c, s := bucketOf(1 << 50); c != numChunks-1 || s != subCount-1 {
		t.Errorf("huge value in (%d,%d), want the top bucket", c, s)
	}
	var h histogram
	h.record(-5)
	if h.quantile(0.5) != 0 {
		t.Errorf("negative latency not clamped to 0")
	}
}

func TestPayloadDetectsWrongEcho(t *testing.T) {
	for _, size := range []int{1, 8, 9, 300} {
		pat := newPattern(size)
		p, q := newPayload(0, pat), newPayload(1, pat)
		a, b := make([]byte, size), make([]byte, size)
		p.build(a, 5)
		if err := p.check(a, 5); err != nil {
			t.Fatalf("size %d: own message rejected: %v", size, err)
		}
		if size < 8 {
			continue // too short for every difference to be certain
		}
		p.build(b, 6)
		if p.check(b, 5) == nil {
			t.Errorf("size %d: next message accepted", size)
		}
		q.build(b, 5)
		if p.check(b, 5) == nil {
			t.Errorf("size %d: other connection's message accepted", size)
		}
		a[size-1] ^= 1
		if p.check(a, 5) == nil {
			t.Errorf("size %d: flipped last byte accepted", size)
		}
	}
}
