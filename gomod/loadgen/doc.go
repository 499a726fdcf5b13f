// Package loadgen drives a TCP echo server and verifies every echoed byte.
//
// Each connection runs in its own goroutine with Go's net package: it keeps
// Config.Depth messages in flight, reads back exactly Config.Size bytes per
// message and compares them with what it sent. Every payload is derived from
// (connection index, sequence number), so a corrupted, reordered, duplicated
// or truncated echo shows up as a mismatch. Round-trip latencies go into
// per-connection log-linear histograms that are merged when the run ends.
//
// Run is what `python -m pyiocp bench` and the pyiocp-loadgen command call.
package loadgen
