package engine_test

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// noIOUringEnv marks the child process TestAutoFallsBackToEpoll runs with
// io_uring_setup forbidden.
const noIOUringEnv = "PYIOCP_TEST_IO_URING_FORBIDDEN"

// TestAutoFallsBackToEpoll: where io_uring_setup is refused (here by a
// seccomp filter, as a container runtime's policy would), "auto" runs on
// epoll and logs one line saying why, and asking for io_uring by name is
// an error that says why. The test re-runs itself in a child process that
// installs the filter first: a filter cannot be taken back.
func TestAutoFallsBackToEpoll(t *testing.T) {
	if os.Getenv(noIOUringEnv) == "1" {
		autoFallsBackChild(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestAutoFallsBackToEpoll$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), noIOUringEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestAutoFallsBackToEpoll") {
		t.Fatalf("the child with io_uring forbidden: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
}

func autoFallsBackChild(t *testing.T) {
	forbidIOUringSetup(t)
	for _, b := range engine.Backends() {
		if b == "io_uring" {
			t.Fatalf("Backends() = %v with io_uring_setup forbidden", engine.Backends())
		}
	}
	var mu sync.Mutex
	var logs []string
	m, err := engine.New(echoHandler{}, engine.WithWorkers(2), engine.WithLogger(func(s string) {
		mu.Lock()
		logs = append(logs, s)
		mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	l := listenAndStart(t, m)
	defer closeManager(t, m)
	if got := m.Stats().Backend; got != "epoll" {
		t.Errorf("auto picked %q, want epoll", got)
	}
	// It serves.
	c := dial(t, l.Addr().String())
	defer c.Close()
	if err := roundTrip(c, []byte("still served")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logs) != 1 || !strings.Contains(logs[0], "io_uring") || !strings.Contains(logs[0], "not permitted") ||
		!strings.Contains(logs[0], "using epoll") {
		t.Errorf("want one line saying io_uring is not permitted and epoll is used, got %q", logs)
	}
	t.Logf("logged: %s", logs[0])

	_, err = engine.New(echoHandler{}, engine.WithBackend("io_uring"))
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "io_uring") {
		t.Errorf(`WithBackend("io_uring") with io_uring forbidden: %v, want an EPERM error naming io_uring`, err)
	}
}

// forbidIOUringSetup installs a seccomp filter on every thread of the
// process that makes io_uring_setup fail with EPERM.
func forbidIOUringSetup(t *testing.T) {
	arch := map[string]uint32{"amd64": unix.AUDIT_ARCH_X86_64, "arm64": unix.AUDIT_ARCH_AARCH64}[runtime.GOARCH]
	if arch == 0 {
		t.Fatalf("no seccomp architecture constant for %s: add it here", runtime.GOARCH)
	}
	const (
		ld  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret = unix.BPF_RET | unix.BPF_K
		// struct seccomp_data: int nr; __u32 arch; ...
		offNr, offArch = 0, 4
	)
	prog := []unix.SockFilter{
		{Code: ld, K: offArch},
		{Code: jeq, K: arch, Jt: 0, Jf: 3}, // another ABI: allow
		{Code: ld, K: offNr},
		{Code: jeq, K: unix.SYS_IO_URING_SETUP, Jt: 0, Jf: 1},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(syscall.EPERM)},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC,
		uintptr(unsafe.Pointer(&fprog))); e != 0 {
		t.Fatalf("seccomp: %v", e)
	}
	runtime.KeepAlive(prog)
	if _, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, 0, 0); e != syscall.EPERM {
		t.Fatalf("io_uring_setup with the filter installed: %v, want EPERM", e)
	}
}
