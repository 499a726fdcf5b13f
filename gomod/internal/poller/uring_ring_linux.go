package poller

import (
	"errors"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ring is one io_uring: the shared submission and completion queues. Only
// the thread that drives the port touches it (single issuer).
type ring struct {
	fd        int
	flags     uint32
	sqMem     []byte
	cqMem     []byte
	sqeMem    []byte
	sqHead    *uint32
	sqTail    *uint32
	sqMask    uint32
	sqEntries uint32
	sqes      []ioSQE
	cqHead    *uint32
	cqTail    *uint32
	cqMask    uint32
	cqes      []ioCQE
	tail      uint32 // next free SQE; published to the kernel at enter
	lost      bool   // the kernel refuses this thread (single issuer): see ErrPortLost
	scratch   ioSQE  // what sqe hands out once lost: the entry goes nowhere

	// The wait's timeout, passed by address: kept here, off the stack.
	ts  unix.Timespec
	arg ioUringGeteventsArg
}

const (
	ringEntries   = 256
	ringCQEntries = 4096
)

var errNoExtArg = errors.New("io_uring lacks IORING_FEAT_EXT_ARG (kernel too old)")

func newRing(flags uint32) (*ring, error) {
	p := ioUringParams{flags: flags | ioringSetupCQSize | ioringSetupClamp, cqEntries: ringCQEntries}
	fd, err := ioUringSetup(ringEntries, &p)
	if err != nil {
		return nil, err
	}
	r := &ring{fd: fd, flags: flags}
	fail := func(err error) (*ring, error) {
		r.close()
		return nil, err
	}
	switch {
	case p.features&ioringFeatExtArg == 0:
		return fail(errNoExtArg)
	case p.features&ioringFeatNoDrop == 0:
		return fail(errors.New("io_uring lacks IORING_FEAT_NODROP"))
	case p.features&ioringFeatFastPoll == 0:
		return fail(errors.New("io_uring lacks IORING_FEAT_FAST_POLL"))
	}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(ioCQE{})))
	mmap := func(size int, off int64) ([]byte, error) {
		return unix.Mmap(fd, off, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	}
	if p.features&ioringFeatSingleMmap != 0 {
		if r.sqMem, err = mmap(max(sqSize, cqSize), ioringOffSQRing); err != nil {
			return fail(err)
		}
		r.cqMem = r.sqMem
	} else {
		if r.sqMem, err = mmap(sqSize, ioringOffSQRing); err != nil {
			return fail(err)
		}
		if r.cqMem, err = mmap(cqSize, ioringOffCQRing); err != nil {
			return fail(err)
		}
	}
	if r.sqeMem, err = mmap(int(p.sqEntries)*int(unsafe.Sizeof(ioSQE{})), ioringOffSQEs); err != nil {
		return fail(err)
	}
	u32 := func(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead, r.sqTail = u32(r.sqMem, p.sqOff.head), u32(r.sqMem, p.sqOff.tail)
	r.sqMask, r.sqEntries = *u32(r.sqMem, p.sqOff.ringMask), p.sqEntries
	r.cqHead, r.cqTail = u32(r.cqMem, p.cqOff.head), u32(r.cqMem, p.cqOff.tail)
	r.cqMask = *u32(r.cqMem, p.cqOff.ringMask)
	r.sqes = unsafe.Slice((*ioSQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqes = unsafe.Slice((*ioCQE)(unsafe.Pointer(&r.cqMem[p.cqOff.cqes])), p.cqEntries)
	// SQE i always sits in slot i: the index array is the identity.
	array := unsafe.Slice((*uint32)(unsafe.Pointer(&r.sqMem[p.sqOff.array])), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.tail = atomic.LoadUint32(r.sqTail)
	return r, nil
}

// sqe returns a zeroed submission entry, submitting what is queued first
// if the queue is full.
func (r *ring) sqe() *ioSQE {
	for r.tail-atomic.LoadUint32(r.sqHead) >= r.sqEntries {
		if r.enter(0, -1) != nil && r.lost {
			r.scratch = ioSQE{} // never submitted: the port is given up
			return &r.scratch
		}
	}
	e := &r.sqes[r.tail&r.sqMask]
	*e = ioSQE{}
	r.tail++
	return e
}

// enter submits every queued entry and runs completions into the queue:
// the one system call of a round. With min > 0 it waits, up to timeout
// (negative: no limit), for that many completions.
func (r *ring) enter(min uint32, timeout time.Duration) error {
	atomic.StoreUint32(r.sqTail, r.tail)
	submit := r.tail - atomic.LoadUint32(r.sqHead)
	flags := uint32(ioringEnterGetEvents)
	var arg *ioUringGeteventsArg
	if min > 0 && timeout >= 0 {
		r.ts = unix.NsecToTimespec(int64(timeout))
		r.arg = ioUringGeteventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.ts)))}
		arg = &r.arg
		flags |= ioringEnterExtArg
	}
	for {
		_, e := ioUringEnter(r.fd, submit, min, flags, arg, min > 0)
		switch e {
		case 0, syscall.ETIME:
			return nil
		case syscall.EINTR:
			if min == 0 {
				continue
			}
			return nil
		case syscall.EBUSY, syscall.EAGAIN:
			// Completions wait in the kernel's overflow list: the caller
			// harvests, and the next enter submits.
			return nil
		case syscall.EEXIST:
			// A single-issuer ring entered from another thread than the
			// one that set it going (which may be gone): it never will be
			// from this one.
			r.lost = true
			return ErrPortLost
		}
		return e
	}
}

// harvest hands up to max completions to f and consumes them.
func (r *ring) harvest(max int, f func(*ioCQE)) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail && n < max; head++ {
		f(&r.cqes[head&r.cqMask])
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// submitted reports whether the SQE queued at position pos (the tail
// before it was taken) has been consumed by the kernel.
func (r *ring) submitted(pos uint32) bool { return int32(pos-atomic.LoadUint32(r.sqHead)) < 0 }

// ready reports completions waiting in the queue.
func (r *ring) ready() bool { return atomic.LoadUint32(r.cqHead) != atomic.LoadUint32(r.cqTail) }

func (r *ring) close() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && (r.sqMem == nil || &r.cqMem[0] != &r.sqMem[0]) {
		unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
	}
	unix.Close(r.fd)
}
