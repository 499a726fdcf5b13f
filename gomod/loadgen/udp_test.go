package loadgen

import (
	"net"
	"testing"
	"time"
)

// udpEcho serves datagrams back to their senders until the socket closes;
// mutate, when set, may change each one first.
func udpEcho(t *testing.T, mutate func(b []byte)) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if mutate != nil {
				mutate(buf[:n])
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return pc
}

// TestUDPEcho: "udp:host:port" drives a UDP echo server, a connected
// socket per connection and a datagram per message, pipelined too.
func TestUDPEcho(t *testing.T) {
	pc := udpEcho(t, nil)
	for _, depth := range []int{1, 4} {
		addr := "udp:" + pc.LocalAddr().String()
		cfg := Config{Addr: addr, Conns: 4, Size: 100, Depth: depth, Duration: 200 * time.Millisecond}
		res := runFor(t, cfg, 2*time.Second)
		if res.Messages == 0 || res.Errors != 0 || res.Mismatches != 0 || res.Connected != 4 {
			t.Fatalf("depth %d: got %+v", depth, res)
		}
		if res.Addr != addr || res.Bytes != res.Messages*100 {
			t.Fatalf("depth %d: got %+v", depth, res)
		}
	}
}

// TestUDPCorruptDatagramIsMismatch: the bytes of each datagram are
// checked as a stream's are.
func TestUDPCorruptDatagramIsMismatch(t *testing.T) {
	pc := udpEcho(t, func(b []byte) { b[len(b)/2] ^= 1 })
	cfg := Config{Addr: "udp:" + pc.LocalAddr().String(), Conns: 2, Size: 64, Duration: 100 * time.Millisecond}
	if res := runFor(t, cfg, 2*time.Second); res.Mismatches == 0 {
		t.Fatalf("no mismatch counted: %+v", res)
	}
}

// TestUDPSilentServerIsError: a datagram with no echo ends as a reply
// timeout, not a hang.
func TestUDPSilentServerIsError(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	cfg := Config{Addr: "udp:" + pc.LocalAddr().String(), Conns: 1, Size: 8, Duration: 3 * time.Second,
		ReplyTimeout: 200 * time.Millisecond}
	res := runFor(t, cfg, 3*time.Second)
	if res.Errors == 0 || res.Messages != 0 {
		t.Fatalf("got %+v", res)
	}
}

func TestUDPRejectsWhatItCannotDo(t *testing.T) {
	good := Config{Addr: "udp:127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for name, mutate := range map[string]func(*Config){
		"Addr":   func(c *Config) { c.Addr = "udp:127.0.0.1" },
		"Addr ":  func(c *Config) { c.Client = ClientEngine },
		"Addr  ": func(c *Config) { c.TLS = true },
		"Mode":   func(c *Config) { c.Mode = ModeChurn },
		"Size":   func(c *Config) { c.Size = MaxDatagram + 1 },
	} {
		c := good
		mutate(&c)
		wantConfigError(t, name, c)
	}
}
