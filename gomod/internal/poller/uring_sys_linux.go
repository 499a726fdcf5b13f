package poller

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The io_uring ABI (include/uapi/linux/io_uring.h), the parts this backend
// uses. x/sys/unix has the system call numbers only.

const (
	ioringSetupCQSize       = 1 << 3
	ioringSetupClamp        = 1 << 4
	ioringSetupRDisabled    = 1 << 6
	ioringSetupCoopTaskrun  = 1 << 8
	ioringSetupSingleIssuer = 1 << 12
	ioringSetupDeferTaskrun = 1 << 13

	ioringFeatSingleMmap = 1 << 0
	ioringFeatNoDrop     = 1 << 1
	ioringFeatFastPoll   = 1 << 5
	ioringFeatExtArg     = 1 << 8

	ioringOpPollAdd     = 6
	ioringOpSendmsg     = 9
	ioringOpRecvmsg     = 10
	ioringOpAccept      = 13
	ioringOpAsyncCancel = 14
	ioringOpConnect     = 16
	ioringOpClose       = 19
	ioringOpRead        = 22
	ioringOpSend        = 26
	ioringOpRecv        = 27

	iosqeBufferSelect   = 1 << 5
	iosqeCQESkipSuccess = 1 << 6

	ioringRecvMultishot   = 1 << 1 // sqe.ioprio of a receive
	ioringAcceptMultishot = 1 << 0 // sqe.ioprio of an accept

	ioringCQEFBuffer       = 1 << 0
	ioringCQEFMore         = 1 << 1
	ioringCQEBufferShift   = 16
	ioringEnterGetEvents   = 1 << 0
	ioringEnterExtArg      = 1 << 3
	ioringOffSQRing        = 0
	ioringOffCQRing        = 0x8000000
	ioringOffSQEs          = 0x10000000
	ioringRegisterProbe    = 8
	ioringRegisterEnable   = 12
	ioringRegisterPbufRing = 22
	ioOpSupported          = 1 << 0
)

type ioSQRingOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type ioCQRingOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type ioUringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFD uint32
	resv                                                                   [3]uint32
	sqOff                                                                  ioSQRingOffsets
	cqOff                                                                  ioCQRingOffsets
}

// ioSQE is a submission queue entry, laid over the kernel's SQE array.
type ioSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // msg_flags, accept_flags, cancel_flags...
	userData    uint64
	bufGroup    uint16
	personality uint16
	fileIndex   uint32
	addr3       uint64
	pad         uint64
}

type ioCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

type ioUringBuf struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16 // the ring's tail, in entry 0
}

type ioUringBufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16
	resv        [3]uint64
}

type ioUringGeteventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	pad       uint32
	ts        uint64 // *unix.Timespec
}

type ioUringProbeOp struct {
	op    uint8
	resv  uint8
	flags uint16
	resv2 uint32
}

type ioUringProbe struct {
	lastOp uint8
	opsLen uint8
	resv   uint16
	resv2  [3]uint32
	ops    [256]ioUringProbeOp
}

func ioUringSetup(entries uint32, p *ioUringParams) (int, error) {
	fd, _, e := unix.RawSyscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// ioUringEnter submits and, with GETEVENTS, waits. A wait that may block
// goes through the runtime (the thread's P is handed off while it sleeps);
// one that does not is a raw system call.
func ioUringEnter(fd int, submit, minComplete uint32, flags uint32, arg *ioUringGeteventsArg, block bool) (int, syscall.Errno) {
	call := unix.RawSyscall6
	if block {
		call = unix.Syscall6
	}
	var argp, argsz uintptr
	if arg != nil {
		argp, argsz = uintptr(unsafe.Pointer(arg)), unsafe.Sizeof(*arg)
	}
	n, _, e := call(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(submit), uintptr(minComplete), uintptr(flags), argp, argsz)
	return int(n), e
}

func ioUringRegister(fd int, op uint32, arg unsafe.Pointer, nr uint32) error {
	_, _, e := unix.RawSyscall6(unix.SYS_IO_URING_REGISTER, uintptr(fd), uintptr(op), uintptr(arg), uintptr(nr), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
