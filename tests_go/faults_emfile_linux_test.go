package engine_test

import (
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestFaultAcceptEMFILE: the process runs out of descriptors (RLIMIT_NOFILE
// lowered, the rest filled) while a peer connects: accepts fail with EMFILE;
// the listener neither spins nor closes, keeps retrying every 100 ms, logs
// the episode once and counts it; once descriptors free up the waiting peer
// is served, and so are more peers at once than the accepts kept posted.
func TestFaultAcceptEMFILE(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "emfile", backend)
		episodes := scale(f, "episodes", 2, 10)
		hold := time.Duration(scale(f, "seconds each", 1, 3)) * time.Second
		// The descriptor limit is lowered before the listener posts its
		// accepts (io_uring takes the limit when an accept is submitted),
		// and stays lowered: each episode fills what is left of it.
		var orig syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig); err != nil {
			t.Fatal(err)
		}
		low := orig
		low.Cur = uint64(openFDs(t) + 128)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig) })
		var lmu sync.Mutex
		var logs []string
		m, err := engine.New(echoHandler{}, engine.WithBackend(backend))
		if err != nil {
			t.Fatal(err)
		}
		m.SetLogger(func(s string) {
			lmu.Lock()
			logs = append(logs, s)
			lmu.Unlock()
		})
		l := listenAndStart(t, m, engine.WithAccepts(engine.DefaultAccepts))
		t.Cleanup(func() { closeManager(t, m) })
		addr := l.Addr().String()
		var worstCPU float64
		var errorsPerEpisode []uint64
		for ep := 1; ep <= episodes; ep++ {
			// The server closes its side of the last episode's peers on
			// its own time: wait (a connection stops counting once its
			// socket is closed), or a descriptor it frees ends the
			// episode before it starts.
			settle(t, "the last peers gone", func() bool { return m.Stats().Connections == 0 })
			before := m.Stats()
			c, fill := dialOutOfDescriptors(t, addr)
			c.SetDeadline(time.Now().Add(hold + 10*time.Second))
			if _, err := c.Write([]byte("waiting")); err != nil {
				t.Fatal(err)
			}
			settle(t, "an accept failing with EMFILE", func() bool { return m.Stats().AcceptErrors > before.AcceptErrors })
			cpu0, t0 := cpuTime(), time.Now()
			time.Sleep(hold)
			cpu := (cpuTime() - cpu0).Seconds() / time.Since(t0).Seconds()
			worstCPU = max(worstCPU, cpu)
			during := m.Stats()
			for _, fd := range fill {
				fd.Close()
			}
			got := make([]byte, 7)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "waiting" {
				t.Fatalf("episode %d: the waiting peer was not served once descriptors freed: %q %v", ep, got, err)
			}
			c.Close()
			failed := during.AcceptErrors - before.AcceptErrors
			errorsPerEpisode = append(errorsPerEpisode, failed)
			// A retry every 100 ms of the accepts kept posted, no more.
			if bound := uint64(engine.DefaultAccepts) * uint64(hold/(100*time.Millisecond)+3); failed > bound {
				t.Errorf("episode %d: %d failed accepts in %s: a busy loop (bound %d)", ep, failed, hold, bound)
			}
			if cpu > 0.1 {
				t.Errorf("episode %d: %.0f%% of a CPU while out of descriptors", ep, cpu*100)
			}
			if during.AcceptErrorEpisodes != uint64(ep) || during.Listeners != 1 {
				t.Errorf("episode %d: %d episodes counted, %d listeners", ep, during.AcceptErrorEpisodes, during.Listeners)
			}
			lmu.Lock()
			nlogs := len(logs)
			last := ""
			if nlogs > 0 {
				last = logs[nlogs-1]
			}
			lmu.Unlock()
			if nlogs != ep || !strings.Contains(last, "too many open files") {
				t.Errorf("episode %d: %d log lines, the last %q", ep, nlogs, last)
			}
			// Served again, by more peers at once than the accepts posted.
			runClients(t, engine.DefaultAccepts+8, func(int) error {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					return err
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				return roundTrip(c, []byte("after"))
			})
		}
		f.sized("%d episodes of %s out of descriptors (RLIMIT_NOFILE lowered, the rest filled), a peer waiting in each", episodes, hold)
		f.note("failed accepts per episode %v (retry every 100 ms x %d posted); worst CPU %.1f%%; %d log lines for %d episodes",
			errorsPerEpisode, engine.DefaultAccepts, worstCPU*100, len(logs), episodes)
	})
}

// dialOutOfDescriptors fills the descriptors the limit leaves and connects
// with the last free one: the server's accept has none left.
func dialOutOfDescriptors(t *testing.T, addr string) (net.Conn, []*os.File) {
	t.Helper()
	var fill []*os.File
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		fill = append(fill, f)
	}
	t.Cleanup(func() {
		for _, f := range fill {
			f.Close()
		}
	})
	fill[len(fill)-1].Close()
	fill = fill[:len(fill)-1]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, fill
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
