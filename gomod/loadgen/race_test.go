//go:build race

package loadgen

// poolDrops: under the race detector sync.Pool drops a quarter of what is
// put back, on purpose, so pooled buffers are allocated again now and then.
const poolDrops = true
