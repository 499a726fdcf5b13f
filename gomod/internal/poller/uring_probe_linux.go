package poller

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// uringAvailable probes io_uring once per process: the ring flags this
// kernel takes (dropping SINGLE_ISSUER/DEFER_TASKRUN, then COOP_TASKRUN,
// where refused), every opcode the backend uses, and a multishot receive
// from a provided-buffer ring, end to end. It may be disabled by sysctl
// (kernel.io_uring_disabled) or a seccomp policy; the error says which.
func uringAvailable() (uint32, error) {
	uringProbe.once.Do(func() { uringProbe.flags, uringProbe.err = probeUring() })
	return uringProbe.flags, uringProbe.err
}

var uringProbe struct {
	once   sync.Once
	flags  uint32
	err    error
	capped bool // multishot receives take a byte cap (sqe.optlen)
}

// uringSingleShot makes receives single-shot even where the kernel caps
// multishot ones: the tests run both ways.
var uringSingleShot bool

// uringMultishotCap reports whether receives are capped multishots.
func uringMultishotCap() bool { return uringProbe.capped && !uringSingleShot }

// UnavailableError says why a backend cannot run here.
type UnavailableError struct {
	Name   string
	Reason string
	Err    error // the OS error behind it, if any
}

func (e *UnavailableError) Error() string { return e.Name + " unavailable: " + e.Reason }
func (e *UnavailableError) Unwrap() error { return e.Err }

// unavailable builds the probe's error; one without an OS error behind it
// (a missing opcode or feature) carries EOPNOTSUPP, so that every such
// error is an OS error to callers (OSError in Python).
func unavailable(reason string, err error) error {
	if err == nil {
		err = syscall.EOPNOTSUPP
	}
	return &UnavailableError{Name: "io_uring", Reason: reason, Err: err}
}

func probeUring() (uint32, error) {
	// A single-issuer ring belongs to the thread that made it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r *ring
	var flags uint32
	var err error
	for _, f := range []uint32{
		ioringSetupSingleIssuer | ioringSetupDeferTaskrun | ioringSetupCoopTaskrun,
		ioringSetupSingleIssuer | ioringSetupCoopTaskrun,
		ioringSetupCoopTaskrun,
		0,
	} {
		if r, err = newRing(f); err == nil {
			flags = f
			break
		}
		if err != syscall.EINVAL {
			break
		}
	}
	switch {
	case errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES):
		return 0, unavailable("io_uring_setup is not permitted (sysctl kernel.io_uring_disabled, or a seccomp policy)", err)
	case errors.Is(err, syscall.ENOSYS):
		return 0, unavailable("the kernel has no io_uring", err)
	case err != nil:
		return 0, unavailable("io_uring_setup: "+err.Error(), err)
	}
	defer r.close()
	var probe ioUringProbe
	if err := ioUringRegister(r.fd, ioringRegisterProbe, unsafe.Pointer(&probe), uint32(len(probe.ops))); err != nil {
		return 0, unavailable("IORING_REGISTER_PROBE: "+err.Error(), err)
	}
	for _, op := range []uint8{ioringOpSendmsg, ioringOpRecvmsg, ioringOpAccept, ioringOpAsyncCancel, ioringOpConnect,
		ioringOpClose, ioringOpRead, ioringOpSend, ioringOpRecv} {
		if op > probe.lastOp || probe.ops[op].flags&ioOpSupported == 0 {
			return 0, unavailable(fmt.Sprintf("opcode %d not supported", op), nil)
		}
	}
	b, err := newBufRing(r, 0, recvBufSize, recvBufCount)
	if err != nil {
		return 0, unavailable("provided-buffer ring: "+err.Error(), err)
	}
	defer b.free()
	if err := probeMultishotRecv(r, b, 0); err != nil {
		return 0, unavailable("multishot receive: "+err.Error(), err)
	}
	uringProbe.capped = probeMultishotRecv(r, b, 2) == nil
	return flags, nil
}

// probeMultishotRecv receives over a socket pair with a multishot receive
// from the buffer ring. Without a cap it checks that one byte arrives and
// the receive stays armed; with cap (sqe.optlen) it checks that the
// receive ends once it has read cap bytes (the read that reaches the cap
// may fill its whole buffer: 3 bytes here). Kernels before the cap reject
// the field.
func probeMultishotRecv(r *ring, b *bufRing, cap uint32) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	e := r.sqe()
	e.opcode = ioringOpRecv
	e.fd = int32(fds[0])
	e.ioprio = ioringRecvMultishot
	e.flags = iosqeBufferSelect
	e.bufGroup = b.bgid
	e.fileIndex = cap
	e.userData = 1
	if _, err := unix.Write(fds[1], []byte("xyz")[:max(cap+1, 1)]); err != nil {
		return err
	}
	if err := r.enter(1, time.Second); err != nil {
		return err
	}
	var got *ioCQE
	var res ioCQE
	r.harvest(1, func(c *ioCQE) { res = *c; got = &res })
	if got != nil && got.flags&ioringCQEFBuffer != 0 {
		b.took()
		b.put(uint16(got.flags >> ioringCQEBufferShift))
		b.publish(false)
	}
	want, more := int32(1), uint32(ioringCQEFMore)
	if cap > 0 {
		want, more = int32(cap+1), 0
	}
	switch {
	case got == nil:
		return errors.New("no completion within a second")
	case got.res < 0:
		return syscall.Errno(-got.res)
	case got.res != want || got.flags&ioringCQEFBuffer == 0 || got.flags&ioringCQEFMore != more:
		return fmt.Errorf("unexpected completion (res %d, flags %#x)", got.res, got.flags)
	}
	if more != 0 {
		// Still armed: end it before the socket closes.
		c := r.sqe()
		c.opcode = ioringOpAsyncCancel
		c.fd = -1
		c.addr = 1
		c.userData = 2
		r.enter(2, time.Second)
		r.harvest(2, func(c *ioCQE) {
			if c.flags&ioringCQEFBuffer != 0 {
				b.took()
				b.put(uint16(c.flags >> ioringCQEBufferShift))
				b.publish(false)
			}
		})
	}
	return nil
}
