package engine_test

import (
	"io"
	"testing"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// httpish answers after the peer's FIN, HTTP/1.0 style: the request ends
// with the half-close, the reply follows, then the close.
type httpish struct {
	*recorder
}

func (h httpish) OnEOF(c *engine.Conn) {
	req := h.received(c.ID())
	c.Send([]byte("reply to " + string(req)))
	c.Close()
}

func TestHalfCloseKeepsSending(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		h := httpish{newRecorder()}
		_, addr := serve(t, h, backend)
		cli := dial(t, addr)
		srv := h.nextConn(t)
		cli.Write([]byte("GET /"))
		cli.(interface{ CloseWrite() error }).CloseWrite()
		got, err := io.ReadAll(cli)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "reply to GET /" {
			t.Fatalf("got %q", got)
		}
		wantNil(t, h.waitClosed(t, srv.ID()))
	})
}

// TestShutdownWrite: FIN follows the pending bytes; receiving goes on; the
// connection closes cleanly once the peer closes too.
func TestShutdownWrite(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		_, cli, srv := serveOne(t, r, backend)
		srv.Send(pattern(1 << 20))
		if err := srv.ShutdownWrite(); err != nil {
			t.Fatal(err)
		}
		if err := srv.ShutdownWrite(); err != nil {
			t.Fatalf("second ShutdownWrite: %v", err)
		}
		if err := srv.Send([]byte("x")); err == nil {
			t.Fatal("send after ShutdownWrite succeeded")
		}
		got, err := io.ReadAll(cli)
		if err != nil || string(got) != string(pattern(1<<20)) {
			t.Fatalf("read %d bytes, %v", len(got), err)
		}
		cli.Write([]byte("after FIN"))
		eventually(t, "data after our FIN", func() bool { return string(r.received(srv.ID())) == "after FIN" })
		cli.Close()
		wantNil(t, r.waitClosed(t, srv.ID()))
	})
}
