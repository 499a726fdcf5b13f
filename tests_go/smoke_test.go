package engine_test

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

type echo struct{ engine.NopHandler }

func (echo) OnRecv(c *engine.Conn, data []byte) { c.Send(data) }

func TestSmokeEcho(t *testing.T) {
	m, err := engine.New(echo{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := m.Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := bytes.Repeat([]byte("hello "), 1000)
	c.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("mismatch")
	}
	c.Close()
	m.Close(time.Second)
	t.Logf("%+v", m.Stats())
}
