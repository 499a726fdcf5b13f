package loadgen

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// listenBacklog0 listens with a backlog of 0: Linux then queues one or two
// connections (depending on the kernel) and drops further SYNs until they
// are accepted.
func listenBacklog0(t *testing.T) net.Listener {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	defer f.Close()
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	ln, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func TestSomeConnectionsFailOthersContinue(t *testing.T) {
	// Accept only after the dropped dials have timed out.
	s := serveListener(t, listenBacklog0(t), 400*time.Millisecond, echo(nil))
	cfg := Config{Addr: s.addr(), Conns: 4, Size: 16, Duration: 500 * time.Millisecond, ConnectTimeout: 200 * time.Millisecond}
	res := runFor(t, cfg, 2*time.Second)
	if res.Connected < 1 || res.Connected > 2 || res.Errors != uint64(4-res.Connected) || res.Messages == 0 || res.Mismatches != 0 || res.FirstError == "" {
		t.Fatalf("got %+v", res)
	}
}
