package poller

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// TestWriteNow: a registered socket is written outside its port, at once;
// a full socket buffer takes 0 bytes without an error (it never blocks);
// a socket whose peer reset reports the error and raises no SIGPIPE.
func TestWriteNow(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		r, cli := pair(t, p)
		defer release(p, r)
		if n, err := WriteNow(r.Sock(), []byte("now")); n != 3 || err != nil {
			t.Fatalf("%d %v", n, err)
		}
		got := make([]byte, 3)
		cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(cli, got); err != nil || !bytes.Equal(got, []byte("now")) {
			t.Fatalf("%q %v", got, err)
		}
		block := make([]byte, 64<<10)
		full := false
		for i := 0; i < 10000 && !full; i++ {
			n, err := WriteNow(r.Sock(), block)
			if err != nil {
				t.Fatal(err)
			}
			full = n == 0
		}
		if !full {
			t.Fatal("the socket never filled")
		}
		cli.(*net.TCPConn).SetLinger(0) // closing with unread bytes resets anyway
		cli.Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			_, err := WriteNow(r.Sock(), block)
			if err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no error after the peer's reset")
			}
			time.Sleep(time.Millisecond)
		}
	})
}
