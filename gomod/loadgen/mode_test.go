package loadgen

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"
)

func TestValidateModes(t *testing.T) {
	good := map[string]Config{
		"echo":  {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second, Mode: ModeEcho},
		"churn": {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second, Mode: ModeChurn, Depth: 1},
		"bulk":  {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second, Mode: ModeBulk, Bytes: MaxBytes},
		// Idle holds buffers for idleParallel connections only.
		"idle": {Addr: "127.0.0.1:1", Conns: MaxConns, Size: 1 << 20, Duration: time.Second, Mode: ModeIdle},
	}
	for name, c := range good {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]Config{
		"Mode":     {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second, Mode: "Echo"},
		"Bytes":    {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second, Mode: ModeBulk},
		"Bytes ":   {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second, Mode: ModeBulk, Bytes: MaxBytes + 1},
		"Bytes  ":  {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second, Mode: ModeBulk, Bytes: -1},
		"Bytes   ": {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second, Bytes: 100},
		"Depth":    {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second, Mode: ModeChurn, Depth: 2},
		"Depth ":   {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Duration: time.Second, Mode: ModeIdle, Depth: 4},
		"Duration": {Addr: "127.0.0.1:1", Conns: 1, Size: 1, Mode: ModeBulk, Bytes: 1},
		"Conns":    {Addr: "127.0.0.1:1", Conns: 100, Size: MaxSize, Duration: time.Second, Mode: ModeChurn},
		"Conns ":   {Addr: "127.0.0.1:1", Conns: 100, Size: MaxSize, Duration: time.Second, Mode: ModeBulk, Bytes: 1},
		"Conns  ":  {Addr: "127.0.0.1:1", Conns: 100, Size: MaxSize, Duration: time.Second, Mode: ModeIdle},
	}
	for name, c := range bad {
		wantConfigError(t, name, c)
	}
}

func TestModesNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		s := startServer(t, echo(nil))
		defer s.stop()
		runFor(t, Config{Mode: ModeChurn, Addr: s.addr(), Conns: 4, Size: 64, Duration: 100 * time.Millisecond}, 2*time.Second)
		runFor(t, Config{Mode: ModeBulk, Addr: s.addr(), Conns: 2, Size: 4096, Bytes: 1 << 20, Duration: time.Second}, 2*time.Second)
		runFor(t, Config{Mode: ModeIdle, Addr: s.addr(), Conns: 20, Size: 64, Duration: 50 * time.Millisecond}, 2*time.Second)
		s2 := startServer(t, func(c net.Conn) { io.Copy(io.Discard, c) })
		defer s2.stop()
		runFor(t, Config{Mode: ModeBulk, Addr: s2.addr(), Conns: 2, Size: 4096, Bytes: 1 << 30, Duration: 100 * time.Millisecond}, 2*time.Second)
	}()
	goroutinesBackTo(t, before)
}
