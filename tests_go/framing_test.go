package engine_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// frames is a handler that records each connection's frames and answers
// each with SendFrame.
type frames struct {
	*recorder
	mu  sync.Mutex
	got [][]byte
}

func newFrames() *frames {
	f := &frames{recorder: newRecorder()}
	f.onRecv = func(c *engine.Conn, data []byte) {
		f.mu.Lock()
		f.got = append(f.got, bytes.Clone(data))
		f.mu.Unlock()
		if err := c.SendFrame(data); err != nil {
			panic(err)
		}
	}
	return f
}

func (f *frames) frames() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.got...)
}

// writeInPieces writes b in pieces of growing odd sizes, so that frames
// are cut everywhere: in their header, their terminator, their payload.
func writeInPieces(c net.Conn, b []byte) error {
	for n := 1; len(b) > 0; n = (n*3 + 1) % 9001 {
		k := min(n+1, len(b))
		if _, err := c.Write(b[:k]); err != nil {
			return err
		}
		b = b[k:]
	}
	return nil
}

// checkEcho sends stream through l's server in pieces and checks that it
// comes back whole and that the handler saw want.
func checkEcho(t *testing.T, h *frames, l *engine.Listener, stream []byte, want [][]byte) {
	t.Helper()
	cli := dial(t, l.Addr().String())
	go writeInPieces(cli, stream)
	back := make([]byte, len(stream))
	if _, err := io.ReadFull(cli, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, stream) {
		t.Fatal("the echoed frames differ")
	}
	got := h.frames()
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d: %.40q, want %.40q", i, got[i], want[i])
		}
	}
}

func TestFramingLinesEcho(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		h := newFrames()
		m := newManager(t, h, backend)
		l := listenAndStart(t, m, engine.WithFraming(&engine.Lines{MaxLine: 5000, Terminator: []byte("\r\n")}))
		t.Cleanup(func() { closeManager(t, m) })
		var stream []byte
		var want [][]byte
		for i := range 300 {
			line := fmt.Appendf(nil, "%d:%s", i, bytes.Repeat([]byte{'a' + byte(i%26)}, i*13%4000))
			if i%50 == 0 {
				line = []byte{}
			}
			want = append(want, line)
			stream = append(append(stream, line...), "\r\n"...)
		}
		checkEcho(t, h, l, stream, want)
	})
}

func TestFramingLengthPrefixedEcho(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		h := newFrames()
		m := newManager(t, h, backend, engine.WithRecvBufferLimit(1<<20))
		lp := &engine.LengthPrefixed{HeaderSize: 4, MaxSize: 1 << 20}
		l := listenAndStart(t, m, engine.WithFraming(lp))
		t.Cleanup(func() { closeManager(t, m) })
		var stream []byte
		var want [][]byte
		for i, n := range []int{0, 1, 3, 300 << 10, 0, 70 << 10, 5, 900 << 10} {
			want = append(want, bytes.Repeat([]byte{byte(i)}, n))
			stream = binary.BigEndian.AppendUint32(stream, uint32(n))
			stream = append(stream, want[i]...)
		}
		checkEcho(t, h, l, stream, want)
	})
}

// serveLines serves newFrames with Lines of at most 10 bytes and connects a
// peer: the handler, the manager, the peer's end and the server's.
func serveLines(t *testing.T, backend string) (*frames, *engine.Manager, net.Conn, *engine.Conn) {
	h := newFrames()
	m := newManager(t, h, backend)
	l := listenAndStart(t, m, engine.WithFraming(&engine.Lines{MaxLine: 10, Terminator: []byte("\n")}))
	t.Cleanup(func() { closeManager(t, m) })
	cli := dial(t, l.Addr().String())
	return h, m, cli, h.nextConn(t)
}

// A frame over its limit closes the connection with a ProtocolError, once
// the frames before it are answered.
func TestFramingOverLimitCloses(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		h, _, cli, srv := serveLines(t, backend)
		cli.Write([]byte("ok\n" + string(bytes.Repeat([]byte("x"), 11))))
		cli.SetReadDeadline(time.Now().Add(waitBound))
		back, _ := io.ReadAll(cli)
		if string(back) != "ok\n" {
			t.Fatalf("read %q before the close, want the answer to ok", back)
		}
		var pe *engine.ProtocolError
		if err := h.waitClosed(t, srv.ID()); !errors.As(err, &pe) {
			t.Fatalf("closed with %v, want a ProtocolError", describe(err))
		}
	})
}

// SetFraming from another thread splits the frame in progress again with
// the new framing.
func TestSetFramingSplitsTheFrameInProgress(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		h, m, cli, srv := serveLines(t, backend)
		cli.Write([]byte("a|bb|c"))
		eventually(t, "bytes read", func() bool { return m.Stats().BytesIn == 6 })
		if err := srv.SetFraming(&engine.Lines{MaxLine: 10, Terminator: []byte("|")}); err != nil {
			t.Fatal(err)
		}
		cli.Write([]byte("cc|"))
		back := make([]byte, 9)
		if _, err := io.ReadFull(cli, back); err != nil || string(back) != "a|bb|ccc|" {
			t.Fatalf("answers %q %v", back, err)
		}
		if got := h.frames(); string(bytes.Join(got, []byte(","))) != "a,bb,ccc" {
			t.Fatalf("frames %q", got)
		}
	})
}

// SetFramingInBatch, called while the frame before the switch is handled,
// splits what follows it with the new framing, though it came in the same
// read.
func TestSetFramingInBatch(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		m := newManager(t, nil, backend)
		l := listen(t, m, engine.WithFraming(&engine.Lines{MaxLine: 100, Terminator: []byte("\n")}))
		defer closeManager(t, m)
		cli := dial(t, l.Addr().String())
		payload := []byte("binary\nwith\nnewlines")
		msg := append([]byte("HELLO\n"), 0, byte(len(payload)))
		msg = append(append(msg, payload...), 0, 0)
		cli.Write(msg)
		var got []string
		deadline := time.Now().Add(waitBound)
		for len(got) < 3 && time.Now().Before(deadline) {
			evs, _, _ := m.PollShared(0, 0, 0, 10*time.Millisecond)
			var switched *engine.Conn
			for k, ev := range evs {
				if ev.Kind != engine.EventRecv || ev.Conn == switched {
					continue
				}
				got = append(got, string(ev.Data))
				if string(ev.Data) == "HELLO" {
					ok, err := ev.Conn.SetFramingInBatch(&engine.LengthPrefixed{HeaderSize: 2, MaxSize: 100}, 0, k)
					if err != nil || !ok {
						t.Fatalf("SetFramingInBatch: %v %v", ok, err)
					}
					switched = ev.Conn
				}
			}
			m.EndPoll(0)
		}
		if len(got) != 3 || got[0] != "HELLO" || got[1] != string(payload) || got[2] != "" {
			t.Fatalf("frames %q", got)
		}
	})
}

// A FIN in the middle of a frame ends the connection with a ProtocolError,
// after the frames before it are answered.
func TestFramingEOFInAFrame(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		h, _, cli, srv := serveLines(t, backend)
		cli.Write([]byte("ok\npart"))
		cli.(*net.TCPConn).CloseWrite()
		cli.SetReadDeadline(time.Now().Add(waitBound))
		if back, _ := io.ReadAll(cli); string(back) != "ok\n" {
			t.Fatalf("read %q, want the answer to ok", back)
		}
		var pe *engine.ProtocolError
		if err := h.waitClosed(t, srv.ID()); !errors.As(err, &pe) {
			t.Fatalf("closed with %v, want a ProtocolError", describe(err))
		}
	})
}
