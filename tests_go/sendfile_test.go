package engine_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// tempFile writes n random bytes to a file of the test's and returns it
// open for reading, with its bytes.
func tempFile(t *testing.T, n int) (*os.File, []byte) {
	t.Helper()
	data := make([]byte, n)
	rand.Read(data)
	path := tempPath(t, "send.bin")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		os.Remove(path)
	})
	return f, data
}

// tempPath is a name in a directory of the test's own. Not t.TempDir:
// under Wine its RemoveAll fails ("Invalid function") where os.Remove of
// each name does not; the caller removes what it made at name first.
func tempPath(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pyiocp-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dir) })
	return filepath.Join(dir, name)
}

// readAll reads from c until the peer closes (or fails), within a bound.
func readAll(t *testing.T, c net.Conn) ([]byte, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitBound))
	return io.ReadAll(c)
}

// TestSendFileInOrderWithSends: file ranges leave in order with the sends
// before and after them, byte for byte; the caller may close its file at
// once (SendFile duplicated it); OnSend counts the file's bytes; the
// duplicate is closed once sent (the leak check).
func TestSendFileInOrderWithSends(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f, data := tempFile(t, 3<<20+123)
		r := newRecorder()
		m, cli, srv := serveOne(t, r, backend, engine.WithSendBufferLimit(8<<20))
		var want []byte
		send := func(b []byte) {
			if err := srv.Send(b); err != nil {
				t.Fatal(err)
			}
			want = append(want, b...)
		}
		sendFile := func(off, count int64) {
			if err := srv.SendFile(f, off, count); err != nil {
				t.Fatal(err)
			}
			end := int64(len(data))
			if count >= 0 {
				end = off + count
			}
			want = append(want, data[off:end]...)
		}
		send([]byte("head\n"))
		sendFile(0, -1)
		send([]byte("middle\n"))
		sendFile(100, 1000)
		sendFile(5, 1)
		send(pattern(50000))
		sendFile(int64(len(data))-7, -1)
		if p := srv.Pending(); p > len(want) || p < 0 {
			t.Errorf("pending %d, queued %d", p, len(want))
		}
		f.Close()
		srv.Close()
		got, err := readAll(t, cli)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes arrived of %d, or out of order", len(got), len(want))
		}
		if err := r.waitClosed(t, srv.ID()); err != nil {
			t.Fatalf("close: %v", err)
		}
		r.mu.Lock()
		sent := r.sent[srv.ID()]
		r.mu.Unlock()
		if sent != len(want) {
			t.Errorf("OnSend counted %d bytes of %d", sent, len(want))
		}
		if s := m.Stats(); s.PendingSendBytes != 0 {
			t.Errorf("pending_send_bytes %d after the close", s.PendingSendBytes)
		}
	})
}

// TestSendFileBadInput: every bad argument is an error at the call that
// queues nothing and leaks no descriptor.
func TestSendFileBadInput(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f, data := tempFile(t, 1000)
		r := newRecorder()
		_, cli, srv := serveOne(t, r, backend, engine.WithSendBufferLimit(1<<20))
		var oe *engine.OptionError
		for _, c := range []struct {
			off, count int64
		}{{-1, -1}, {1001, -1}, {0, 1001}, {999, 2}, {1001, 0}} {
			if err := srv.SendFile(f, c.off, c.count); !errors.As(err, &oe) {
				t.Errorf("SendFile(offset %d, count %d): %v, want an OptionError", c.off, c.count, err)
			}
		}
		if err := srv.SendFile(f, 1000, -1); err != nil {
			t.Errorf("an empty range at the end: %v", err)
		}
		dir, err := os.Open(filepath.Dir(f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.SendFile(dir, 0, -1); !errors.As(err, &oe) {
			t.Errorf("a directory: %v, want an OptionError", err)
		}
		dir.Close()
		closed, err := os.Open(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		closed.Close()
		if err := srv.SendFile(closed, 0, -1); err == nil {
			t.Error("a closed file was taken")
		}
		big, _ := tempFile(t, 2<<20)
		if err := srv.SendFile(big, 0, -1); !errors.Is(err, engine.ErrBufferFull) {
			t.Errorf("over the limit: %v, want ErrBufferFull", err)
		}
		if p := srv.Pending(); p != 0 {
			t.Errorf("pending %d after refused calls", p)
		}
		if err := srv.SendFile(f, 0, 10); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		if err := srv.SendFile(f, 0, 10); !errors.Is(err, engine.ErrClosed) {
			t.Errorf("after Close: %v, want ErrClosed", err)
		}
		got, err := readAll(t, cli)
		if err != nil || !bytes.Equal(got, data[:10]) {
			t.Fatalf("got %q, %v", got, err)
		}
	})
}

// TestSendFileShrunk: a file truncated while it is being sent ends the
// connection with ErrFileShrunk once the bytes that exist are sent: never
// a hang. (Bytes the kernel already took from the file's cache may show
// the truncation, as with any zero-copy send: only those before the cut
// are checked.)
func TestSendFileShrunk(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		const size, cut = 32 << 20, 1 << 20
		f, data := tempFile(t, size)
		r := newRecorder()
		_, cli, srv := serveOne(t, r, backend, engine.WithSendBufferLimit(size))
		if err := srv.SendFile(f, 0, -1); err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(f.Name(), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Truncate(cut); err != nil {
			t.Fatal(err)
		}
		w.Close()
		got, _ := readAll(t, cli) // ends with a reset or the end of stream
		n := min(len(got), cut)
		if !bytes.Equal(got[:n], data[:n]) {
			t.Fatalf("%d bytes arrived, not the file's", len(got))
		}
		if err := r.waitClosed(t, srv.ID()); !errors.Is(err, engine.ErrFileShrunk) && len(got) != size {
			t.Fatalf("on close: %v after %d bytes, want ErrFileShrunk", err, len(got))
		}
	})
}

// TestSendFileOnConnectionClosedMeanwhile: a connection aborted, or reset
// by its peer, with file ranges queued closes once, and its duplicates
// are closed (the leak check).
func TestSendFileOnConnectionClosedMeanwhile(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f, _ := tempFile(t, 8<<20)
		r := newRecorder()
		_, cli, srv := serveOne(t, r, backend, engine.WithSendBufferLimit(32<<20))
		for i := 0; i < 3; i++ {
			if err := srv.SendFile(f, 0, -1); err != nil {
				t.Fatal(err)
			}
		}
		srv.Abort()
		r.waitClosed(t, srv.ID())
		cli.Close()

		// The peer resets with ranges queued and being sent.
		cli = dial(t, cli.RemoteAddr().String())
		srv = r.nextConn(t)
		for i := 0; i < 3; i++ {
			if err := srv.SendFile(f, 0, -1); err != nil {
				t.Fatal(err)
			}
		}
		buf := make([]byte, 1<<16)
		io.ReadFull(cli, buf)
		resetClose(t, cli)
		r.waitClosed(t, srv.ID())
		if err := srv.SendFile(f, 0, 1); !errors.Is(err, engine.ErrClosed) {
			t.Errorf("after the close: %v, want ErrClosed", err)
		}
	})
}

// TestSendFileLarge: 64 MiB arrive byte-exact, sent a piece at a time
// from OnDrain.
func TestSendFileLarge(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		const size, piece = 64 << 20, 4 << 20
		f, data := tempFile(t, size)
		r := newRecorder()
		var off int64
		pump := func(c *engine.Conn) {
			for off < size {
				err := c.SendFile(f, off, piece)
				if err != nil {
					return // BufferFull: OnDrain goes on
				}
				off += piece
			}
			c.Close()
		}
		r.onDrain = pump
		r.onOpen = pump
		_, cli, _ := serveOne(t, r, backend, engine.WithSendBufferLimit(8<<20))
		got, err := readAll(t, cli)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("%d bytes arrived of %d, or different", len(got), size)
		}
	})
}
