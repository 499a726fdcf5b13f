// Package loadgen drives a TCP echo server and verifies every echoed byte.
//
// Config.Mode picks the load:
//
//   - ModeEcho (the default): each connection runs in its own goroutine with
//     Go's net package, keeps Config.Depth messages in flight, reads back
//     exactly Config.Size bytes per message and compares them with what it
//     sent. With Config.Client = ClientEngine every connection runs on one
//     worker of pyiocp's engine instead, whose rounds batch the system
//     calls of all of them (engineclient.go).
//   - ModeChurn: each of Config.Conns goroutines connects, echoes one
//     message and closes, over and over; the figure is connections per
//     second.
//   - ModeBulk: each connection streams Config.Bytes in writes of
//     Config.Size bytes from one goroutine while another reads the echoed
//     stream back; the figure is MB/s one way.
//   - ModeIdle: Config.Conns connections each echo one message, sit idle
//     for Config.Duration (Config.Ready is called before, so the server's
//     memory can be measured) and echo once more.
//
// Every payload is derived from (connection index, sequence number), so a
// corrupted, reordered, duplicated or truncated echo shows up as a mismatch.
// Round-trip latencies go into per-connection log-linear histograms that are
// merged when the run ends.
//
// Run is what `python -m pyiocp bench` and the pyiocp-loadgen command call.
package loadgen
