package loadgen

import "time"

// Progress is a snapshot handed to Config.Progress about once per second.
type Progress struct {
	// Warmup is true before the measured window starts; Elapsed and Messages
	// then count from the first traffic instead of from the window's start.
	Warmup     bool
	Elapsed    time.Duration // since the measured window (or warmup) started
	Messages   uint64        // verified echoes since then (approximate; Result is exact)
	MsgsPerSec float64       // rate over the last interval, not the whole run
}

// progressInterval is a variable so tests need not wait whole seconds.
var progressInterval = time.Second

// report calls fn every progressInterval until done is closed.
func (r *runner) report(fn func(Progress), done <-chan struct{}) {
	tick := time.NewTicker(progressInterval)
	defer tick.Stop()
	var window <-chan time.Time
	if r.cfg.Warmup > 0 {
		t := time.NewTimer(time.Until(r.measureStart))
		defer t.Stop()
		window = t.C
	}
	from, base := r.start, uint64(0) // origin of Elapsed and Messages
	lastT, last := r.start, uint64(0)
	for {
		select {
		case <-done:
			return
		case now := <-window:
			// The window opens: restart counting from here, and tick
			// whole intervals from its start.
			from, base = now, r.total()
			lastT, last = now, base
			window = nil
			tick.Reset(progressInterval)
		case now := <-tick.C:
			n := r.total()
			rate := 0.0
			if dt := now.Sub(lastT).Seconds(); dt > 0 {
				rate = float64(n-last) / dt
			}
			lastT, last = now, n
			fn(Progress{
				Warmup:     window != nil,
				Elapsed:    now.Sub(from),
				Messages:   n - base,
				MsgsPerSec: rate,
			})
		}
	}
}

func (r *runner) total() uint64 {
	var n uint64
	for _, w := range r.workers {
		n += w.completed.Load()
	}
	return n
}
