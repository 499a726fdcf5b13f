//go:build !race

package engine

import (
	"runtime"
	"testing"
)

// TestTimerMemory: 100,000 pending timers fit in 20 MB of Go heap. (Not
// under the race detector, whose shadow memory would be counted.)
func TestTimerMemory(t *testing.T) {
	m, _ := pollTimers(t)
	const n = 100_000
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	timers := armTimers(t, m, n)
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%d pending timers: %.0f bytes each on the Go heap", n, per)
	if per*n > 20<<20 {
		t.Errorf("%d pending timers take %.1f MB", n, per*n/(1<<20))
	}
	runtime.KeepAlive(timers)
}
