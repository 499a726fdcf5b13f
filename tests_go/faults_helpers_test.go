package engine_test

// The fault suite: hostile peers, faults, limits and leaks (docs/reliability.md).
//
// Every scenario is one code path with two sizes: the short form runs in CI
// (make test), the long form with PYIOCP_SOAK=1 (make soak). Each one starts
// with fault(), which takes a baseline and, when the test ends (after the
// manager's own cleanup has closed it), checks that the process is back to
// it within these tolerances:
//
//	open descriptors   0 (exactly the baseline)
//	goroutines         0 (at most the baseline)
//	Go heap            baseline + faultHeapSlack, after runtime.GC
//	RSS                baseline + faultRSSSlack, after debug.FreeOSMemory
//	                   (not under -race: the race detector's shadow memory
//	                   for every heap page touched is never given back;
//	                   the heap check stands in for it there)
//
// With PYIOCP_REPORT_DIR set, each scenario appends one JSON record (sizes,
// measurements, the result) to $PYIOCP_REPORT_DIR/go.jsonl, from which
// scripts/reliability_report.py writes docs/reliability.md.

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	faultHeapSlack = 16 << 20
	// The runtime keeps some spans and stacks; a leak of the scenarios'
	// size (connections x buffers) is far above this.
	faultRSSSlack = 32 << 20
	faultSettle   = 5 * time.Second
)

// faultWait bounds every wait of a scenario: the long forms under the race
// detector move gigabytes on two cores.
var faultWait = pick(15*time.Second, 3*time.Minute)

// settle waits up to faultWait for cond.
func settle(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(faultWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", faultWait, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// runClients runs client(0) to client(n-1) at once and fails t with the
// error of each that failed.
func runClients(t *testing.T, n int, client func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := client(i); err != nil {
				t.Errorf("client %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}

// soak reports whether the long forms run (make soak sets PYIOCP_SOAK=1).
func soak() bool { return os.Getenv("PYIOCP_SOAK") == "1" }

// pick is the short (CI) or the long (soak) size of a scenario.
func pick[T any](short, long T) T {
	if soak() {
		return long
	}
	return short
}

// scale is pick, recorded: the report shows the CI and the soak value of
// each scaled parameter of a scenario.
func scale[T any](f *faultRun, name string, short, long T) T {
	f.mu.Lock()
	sc, _ := f.counters["scale"].(map[string][]any)
	if sc == nil {
		sc = map[string][]any{}
		f.counters["scale"] = sc
	}
	sc[name] = []any{short, long}
	f.mu.Unlock()
	return pick(short, long)
}

// faultRun is one scenario's baseline, figures and record.
type faultRun struct {
	t        *testing.T
	id       string
	backend  string
	start    time.Time
	fds      int
	gs       int
	heap     uint64
	rss      int64
	mu       sync.Mutex
	size     []string
	notes    []string
	counters map[string]any
}

// fault starts scenario id: call it first in the (sub)test, before serve,
// so that its check runs after the manager is closed.
func fault(t *testing.T, id, backend string) *faultRun {
	t.Helper()
	r := baseline(t, id, backend)
	t.Cleanup(r.finish)
	return r
}

func baseline(t *testing.T, id, backend string) *faultRun {
	runtime.GC()
	debug.FreeOSMemory()
	r := &faultRun{
		t: t, id: id, backend: backend, start: time.Now(),
		fds: openFDs(t), gs: runtime.NumGoroutine(), heap: heapInUse(), rss: rssBytes(),
		counters: map[string]any{},
	}
	resetPeakRSS()
	return r
}

// TestFaultHarnessCatchesLeaks: the baseline check is not vacuous: a
// descriptor, a goroutine and heap left behind are reported; released, the
// process is back to its baseline.
func TestFaultHarnessCatchesLeaks(t *testing.T) {
	r := baseline(t, "self-test", "")
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { <-stop; close(done) }()
	hold := make([]byte, 2*faultHeapSlack)
	for i := range hold {
		hold[i] = byte(i)
	}
	leaks, _ := r.check(100 * time.Millisecond)
	runtime.KeepAlive(hold)
	for _, want := range []string{"open fds", "goroutines", "Go heap"} {
		if !slices.ContainsFunc(leaks, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("a leaked %s went unseen: %q", want, leaks)
		}
	}
	f.Close()
	close(stop)
	<-done
	if leaks, _ := r.check(faultSettle); len(leaks) != 0 {
		t.Errorf("released, still: %q", leaks)
	}
}

// sized records the scenario's size, as the report shows it.
func (r *faultRun) sized(format string, args ...any) {
	r.mu.Lock()
	r.size = append(r.size, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// note records a measurement for the report.
func (r *faultRun) note(format string, args ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *faultRun) set(key string, v any) {
	r.mu.Lock()
	r.counters[key] = v
	r.mu.Unlock()
}

func (r *faultRun) finish() {
	t := r.t
	peak := peakRSS()
	elapsed := time.Since(r.start)
	leaks, now := r.check(faultSettle)
	for _, l := range leaks {
		t.Errorf("%s: not back to baseline: %s", r.id, l)
	}
	result := "pass"
	if t.Failed() {
		result = "fail"
	}
	r.write(map[string]any{
		"scenario": r.id,
		"suite":    "go",
		"test":     t.Name(),
		"backend":  r.backend,
		"mode":     pick("short", "soak"),
		"race":     raceEnabled,
		"size":     r.size,
		"notes":    r.notes,
		"counters": r.counters,
		"result":   result,
		"seconds":  round(elapsed.Seconds(), 2),
		"baseline": map[string]any{
			"fds": []int{r.fds, now.fds}, "goroutines": []int{r.gs, now.gs},
			"heap_mib": []float64{toMiB(int64(r.heap)), toMiB(int64(now.heap))},
			"rss_mib":  []float64{toMiB(r.rss), toMiB(peak), toMiB(now.rss)},
		},
		"time": time.Now().UTC().Format(time.RFC3339),
	})
}

// figures are the process's figures that must come back to the baseline.
type figures struct {
	fds, gs int
	heap    uint64
	rss     int64
}

// check waits up to settle for the process to come back to the baseline
// and returns how it did not.
func (r *faultRun) check(settle time.Duration) (leaks []string, now figures) {
	deadline := time.Now().Add(settle)
	for {
		runtime.GC()
		debug.FreeOSMemory()
		now = figures{openFDs(r.t), runtime.NumGoroutine(), heapInUse(), rssBytes()}
		rssOK := raceEnabled || now.rss <= r.rss+faultRSSSlack
		if (now.fds <= r.fds && now.gs <= r.gs && now.heap <= r.heap+faultHeapSlack && rssOK) ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if now.fds != r.fds {
		leaks = append(leaks, fmt.Sprintf("open fds %d -> %d", r.fds, now.fds))
	}
	if now.gs > r.gs {
		buf := make([]byte, 1<<16)
		buf = buf[:runtime.Stack(buf, true)]
		leaks = append(leaks, fmt.Sprintf("goroutines %d -> %d\n%s", r.gs, now.gs, buf))
	}
	if now.heap > r.heap+faultHeapSlack {
		leaks = append(leaks, fmt.Sprintf("Go heap %s -> %s (tolerance +%s)",
			mib(int64(r.heap)), mib(int64(now.heap)), mib(faultHeapSlack)))
	}
	if !raceEnabled && now.rss > r.rss+faultRSSSlack {
		leaks = append(leaks, fmt.Sprintf("RSS %s -> %s (tolerance +%s)", mib(r.rss), mib(now.rss), mib(faultRSSSlack)))
	}
	return leaks, now
}

func (r *faultRun) write(rec map[string]any) {
	dir := os.Getenv("PYIOCP_REPORT_DIR")
	if dir == "" {
		return
	}
	b, err := json.Marshal(rec)
	if err != nil {
		r.t.Errorf("report record: %v", err)
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.t.Errorf("report dir: %v", err)
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, "go.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		r.t.Errorf("report file: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		r.t.Errorf("report file: %v", err)
	}
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func toMiB(n int64) float64 { return round(float64(n)/(1<<20), 1) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

// payloadBlock is random bytes that scenarios send slices of: a
// connection's payload is payloadBlock[off:off+n], so payloads differ
// between connections without a copy each.
var payloadBlock = func() []byte {
	b := make([]byte, 4<<20)
	rng := rand.NewChaCha8([32]byte{'p', 'y', 'i', 'o', 'c', 'p'})
	rng.Read(b)
	return b
}()

// payload is n bytes of payloadBlock chosen by seed, and their SHA-256.
func payload(seed uint64, n int) ([]byte, [32]byte) {
	off := int(seed*7919) % (len(payloadBlock) - n + 1)
	p := payloadBlock[off : off+n]
	return p, sha256.Sum256(p)
}

// latencies keeps the worst and the count of round trips.
type latencies struct {
	mu    sync.Mutex
	n     int
	worst time.Duration
	total time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.n++
	l.total += d
	l.worst = max(l.worst, d)
	l.mu.Unlock()
}

func (l *latencies) get() (n int, worst, mean time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n > 0 {
		mean = l.total / time.Duration(l.n)
	}
	return l.n, l.worst, mean
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
