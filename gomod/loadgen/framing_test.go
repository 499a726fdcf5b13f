package loadgen

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// lineEcho splits its input into lines and writes each back with its
// "\n": the echo is byte for byte the input only if every message is
// exactly one line.
func lineEcho(c net.Conn) {
	r := bufio.NewReaderSize(c, 1<<16)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		if _, err := c.Write(line); err != nil {
			return
		}
	}
}

// lengthEcho reads 4-byte big-endian length prefixed frames and writes
// each back, header and payload in separate writes.
func lengthEcho(c net.Conn) {
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:]))
		if _, err := io.ReadFull(c, body); err != nil {
			return
		}
		c.Write(hdr[:])
		c.Write(body)
	}
}

func TestFramedMessages(t *testing.T) {
	servers := map[string]func(net.Conn){FramingLines: lineEcho, FramingLength: lengthEcho}
	forClients(t, func(t *testing.T, client string) {
		for framing, serve := range servers {
			for _, size := range []int{4, 9, 64, 5000} {
				s := startServer(t, serve)
				cfg := Config{Client: client, Addr: s.addr(), Conns: 3, Size: size, Depth: 4, Framing: framing,
					Duration: 150 * time.Millisecond}
				res := runFor(t, cfg, 2*time.Second)
				if res.Messages == 0 || res.Errors != 0 || res.Mismatches != 0 {
					t.Fatalf("%s, %d B: %+v", framing, size, res)
				}
			}
		}
	})
	for name, c := range map[string]Config{
		"Framing":  {Addr: "127.0.0.1:1", Conns: 1, Size: 8, Duration: time.Second, Framing: "json"},
		"Framing ": {Addr: "127.0.0.1:1", Conns: 1, Size: 8, Duration: time.Second, Framing: FramingLines, Mode: ModeChurn, Depth: 1},
		"Size":     {Addr: "127.0.0.1:1", Conns: 1, Size: 3, Duration: time.Second, Framing: FramingLength},
	} {
		wantConfigError(t, name, c)
	}
}
