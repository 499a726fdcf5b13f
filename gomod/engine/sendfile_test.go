package engine

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pyiocp/pyiocp/gomod/internal/poller"
)

// refusing is a port whose kernel will not send files without a copy.
type refusing struct{ poller.Poller }

func (refusing) PostSendFile(poller.Ref, poller.File, int64, int) (int, bool, error) {
	return 0, false, errSendFileRefused
}

// TestSendFileCopiesWhereTheKernelRefuses: when the kernel refuses a
// zero-copy send of the file, its bytes are read and sent instead, in
// order with the sends around them, and the duplicate is closed.
func TestSendFileCopiesWhereTheKernelRefuses(t *testing.T) {
	if !poller.SendFileRefused(errSendFileRefused) {
		t.Fatal("the refusal used here is not one")
	}
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			m, c, peer := acceptPolled(t, backend)
			m.workers[0].p = refusing{m.workers[0].p}
			data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // over a chunk: several reads
			// Not t.TempDir: under Wine its RemoveAll fails ("Invalid
			// function") where os.Remove does not.
			dir, err := os.MkdirTemp("", "pyiocp-test")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "f")
			t.Cleanup(func() {
				os.Remove(path)
				os.Remove(dir)
			})
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]byte("head"), data[7:]...)
			want = append(want, "tail"...)
			if err := c.Send([]byte("head")); err != nil {
				t.Fatal(err)
			}
			if err := c.SendFile(f, 7, -1); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := c.Send([]byte("tail")); err != nil {
				t.Fatal(err)
			}
			var r *fileRange
			c.mu.Lock()
			if len(c.sendq.files) == 1 {
				r = c.sendq.files[0]
			}
			c.mu.Unlock()
			if r == nil {
				t.Fatal("no file range queued")
			}
			deliver(t, m, c, peer, want)
			if !r.copy {
				t.Error("the range was not copied")
			}
			if err := r.f.Close(); err == nil {
				t.Error("the duplicate was still open once sent")
			}
		})
	}
}

// recording is a port that notes the byte count of each PostSendFile.
type recording struct {
	poller.Poller
	counts *[]int
}

func (p recording) PostSendFile(r poller.Ref, f poller.File, off int64, n int) (int, bool, error) {
	*p.counts = append(*p.counts, n)
	return p.Poller.PostSendFile(r, f, off, n)
}

// TestSendFileSpansContiguousRangesOfOneFile: ranges of one file queued
// back to back, each starting where the one before ends, go in one
// sendfile; a gap in the file, bytes queued between, or another file
// starts a new one. The bytes arrive in order either way.
func TestSendFileSpansContiguousRangesOfOneFile(t *testing.T) {
	for _, backend := range Backends() {
		t.Run(backend, func(t *testing.T) {
			m, c, peer := acceptPolled(t, backend)
			var counts []int
			m.workers[0].p = recording{m.workers[0].p, &counts}
			dir, err := os.MkdirTemp("", "pyiocp-test") // not t.TempDir: see above
			if err != nil {
				t.Fatal(err)
			}
			data := bytes.Repeat([]byte("0123456789abcdef"), 1000)
			other := bytes.Repeat([]byte("ABCDEFGHIJKLMNOP"), 1000)
			open := func(name string, b []byte) *os.File {
				path := filepath.Join(dir, name)
				t.Cleanup(func() { os.Remove(path) })
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { f.Close() })
				return f
			}
			f, g := open("f", data), open("g", other)
			t.Cleanup(func() { os.Remove(dir) })
			var want []byte
			queue := func(f *os.File, b []byte, off, n int) {
				t.Helper()
				if err := c.SendFile(f, int64(off), int64(n)); err != nil {
					t.Fatal(err)
				}
				want = append(want, b[off:off+n]...)
			}
			queue(f, data, 0, 1000) // these three: one sendfile
			queue(f, data, 1000, 2000)
			queue(f, data, 3000, 500)
			queue(f, data, 4000, 100)  // a gap in the file
			queue(g, other, 4100, 300) // another file, contiguous offsets
			if err := c.Send([]byte("between")); err != nil {
				t.Fatal(err)
			}
			want = append(want, "between"...)
			queue(g, other, 4400, 50) // bytes between
			deliver(t, m, c, peer, want)
			// Loopback takes each whole: one call per span.
			if w := []int{3500, 100, 300, 50}; !slices.Equal(counts, w) {
				t.Errorf("sendfile counts %v, want %v", counts, w)
			}
			c.mu.Lock()
			left := len(c.sendq.files)
			c.mu.Unlock()
			if left != 0 {
				t.Errorf("%d ranges still queued", left)
			}
		})
	}
}
