package loadgen

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

// TestUnixEcho: both clients drive an echo server on a Unix domain
// socket, by path and by abstract name, named unix:PATH in Addr.
func TestUnixEcho(t *testing.T) {
	forClients(t, func(t *testing.T, client string) {
		path := filepath.Join(t.TempDir(), "echo.sock")
		for _, name := range []string{path, "@pyiocp-loadgen-" + client + "-" + filepath.Base(t.TempDir())} {
			ln, err := net.Listen("unix", name)
			if err != nil {
				t.Fatal(err)
			}
			s := serveListener(t, ln, 0, echo(nil))
			cfg := Config{Client: client, Addr: "unix:" + name, Conns: 4, Size: 100, Duration: 200 * time.Millisecond}
			res := runFor(t, cfg, 2*time.Second)
			if res.Messages == 0 || res.Errors != 0 || res.Mismatches != 0 || res.Connected != 4 {
				t.Fatalf("%s: got %+v", name, res)
			}
			if res.Addr != "unix:"+name {
				t.Errorf("result's target %q", res.Addr)
			}
			s.stop()
		}
	})
}
