package loadgen

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Result holds the figures of one Run. Messages, Bytes, the rates and the
// latencies cover only the measured window; Errors and Mismatches cover the
// whole run, warmup and connecting included.
//
// In ModeChurn a message is one connect-echo-close cycle: Connected counts
// every connect that succeeded, ConnsPerSec = MsgsPerSec is cycles per
// second in the window, and the latencies run from the connect to the
// verified echo. In ModeBulk a message is one write of Size bytes (the last
// may be shorter): Bytes is the verified stream bytes of all connections,
// Elapsed runs from the first write to the last echoed byte read, MBPerSec
// is Bytes/Elapsed, and there are no latencies. In ModeIdle Messages counts
// the verified echoes before and after the idle time, Elapsed is the idle
// time and the latencies are those echoes' round trips.
type Result struct {
	Mode                 string // ModeEcho, ModeChurn, ModeBulk or ModeIdle
	Addr                 string
	Conns, Size, Depth   int
	Connected            int           // connections that were made
	Elapsed              time.Duration // measured window; shorter if ctx ended it or every connection failed
	Messages             uint64        // completed, verified echoes in the window
	Bytes                uint64        // payload bytes echoed (both directions counted once: Messages*Size)
	MsgsPerSec, MBPerSec float64       // MB = 10^6 bytes
	ConnsPerSec          float64       // ModeChurn: connect-echo-close cycles per second
	P50, P90, P99, Max   time.Duration // round-trip latency of one message
	Mean                 time.Duration
	Errors               uint64 // connect failures, resets, EOFs, timeouts (at most one per connection)
	Mismatches           uint64 // echoed messages that differ from what was sent
	FirstError           string // text of the first error or mismatch, "" if none
}

// OK reports a clean run: echoes came back and none was wrong.
func (r Result) OK() bool { return r.Errors == 0 && r.Mismatches == 0 && r.Messages > 0 }

// setRates derives MsgsPerSec and MBPerSec from Messages, Bytes and Elapsed.
func (r *Result) setRates() {
	if s := r.Elapsed.Seconds(); s > 0 {
		r.MsgsPerSec = float64(r.Messages) / s
		r.MBPerSec = float64(r.Bytes) / s / 1e6
	}
}

// setLatencies takes the latency figures from h.
func (r *Result) setLatencies(h *histogram) {
	r.P50 = h.quantile(0.50)
	r.P90 = h.quantile(0.90)
	r.P99 = h.quantile(0.99)
	r.Max = time.Duration(h.max)
	r.Mean = h.mean()
}

// Table renders the result as aligned "name  value" lines; a mode's
// lines leave out the figures it does not measure.
func (r Result) Table() string {
	var rows [][2]string
	add := func(name, value string) { rows = append(rows, [2]string{name, value}) }
	if r.Mode != "" && r.Mode != ModeEcho {
		add("mode", r.Mode)
	}
	add("target", r.Addr)
	add("connections", fmt.Sprintf("%d (%d connected)", r.Conns, r.Connected))
	add("message size", fmt.Sprintf("%d B", r.Size))
	add("depth", fmt.Sprint(r.Depth))
	add("elapsed", fmt.Sprintf("%.3f s", r.Elapsed.Seconds()))
	add("messages", fmt.Sprint(r.Messages))
	add("bytes", fmt.Sprint(r.Bytes))
	if r.Mode != ModeIdle {
		add("msgs/s", fmt.Sprintf("%.1f", r.MsgsPerSec))
		add("MB/s", fmt.Sprintf("%.2f", r.MBPerSec))
	}
	if r.Mode == ModeChurn {
		add("conns/s", fmt.Sprintf("%.1f", r.ConnsPerSec))
	}
	if r.Mode != ModeBulk {
		add("latency p50", fmtDur(r.P50))
		add("latency p90", fmtDur(r.P90))
		add("latency p99", fmtDur(r.P99))
		add("latency max", fmtDur(r.Max))
		add("latency mean", fmtDur(r.Mean))
	}
	add("errors", fmt.Sprint(r.Errors))
	add("mismatches", fmt.Sprint(r.Mismatches))
	if r.FirstError != "" {
		add("first error", r.FirstError)
	}
	var b strings.Builder
	for _, row := range rows {
		fmt.Fprintf(&b, "%-13s %s\n", row[0], row[1])
	}
	return b.String()
}

// fmtDur prints a latency with a unit that keeps 3-4 significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.1f us", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.3f s", d.Seconds())
	}
}

// resultJSON fixes the JSON names: snake_case, durations in float seconds.
type resultJSON struct {
	Mode        string  `json:"mode"`
	Addr        string  `json:"addr"`
	Conns       int     `json:"conns"`
	Size        int     `json:"size"`
	Depth       int     `json:"depth"`
	Connected   int     `json:"connected"`
	Elapsed     float64 `json:"elapsed_s"`
	Messages    uint64  `json:"messages"`
	Bytes       uint64  `json:"bytes"`
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	MBPerSec    float64 `json:"mb_per_sec"`
	ConnsPerSec float64 `json:"conns_per_sec"`
	P50         float64 `json:"p50_s"`
	P90         float64 `json:"p90_s"`
	P99         float64 `json:"p99_s"`
	Max         float64 `json:"max_s"`
	Mean        float64 `json:"mean_s"`
	Errors      uint64  `json:"errors"`
	Mismatches  uint64  `json:"mismatches"`
	FirstError  string  `json:"first_error"`
}

// JSON renders the result as one JSON object (see resultJSON for the keys).
func (r Result) JSON() ([]byte, error) {
	return json.Marshal(resultJSON{
		Mode: r.Mode, Addr: r.Addr, Conns: r.Conns, Size: r.Size, Depth: r.Depth, Connected: r.Connected,
		Elapsed:  r.Elapsed.Seconds(),
		Messages: r.Messages, Bytes: r.Bytes,
		MsgsPerSec: r.MsgsPerSec, MBPerSec: r.MBPerSec, ConnsPerSec: r.ConnsPerSec,
		P50: r.P50.Seconds(), P90: r.P90.Seconds(), P99: r.P99.Seconds(),
		Max: r.Max.Seconds(), Mean: r.Mean.Seconds(),
		Errors: r.Errors, Mismatches: r.Mismatches, FirstError: r.FirstError,
	})
}
