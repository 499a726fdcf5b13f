package engine

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

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
			done := make(chan []byte)
			go func() {
				got := make([]byte, len(want))
				peer.SetReadDeadline(time.Now().Add(30 * time.Second))
				n, _ := io.ReadFull(peer, got)
				done <- got[:n]
			}()
			for {
				m.Poll(0, 16, 10*time.Millisecond)
				select {
				case got := <-done:
					if !bytes.Equal(got, want) {
						t.Fatalf("%d bytes of %d arrived, or out of order", len(got), len(want))
					}
					if !r.copy {
						t.Error("the range was not copied")
					}
					if err := r.f.Close(); err == nil {
						t.Error("the duplicate was still open once sent")
					}
					if p := c.Pending(); p != 0 {
						t.Errorf("pending %d", p)
					}
					return
				default:
				}
			}
		})
	}
}
