package poller

import (
	"errors"

	"golang.org/x/sys/windows"
)

// PostSendFile posts TransmitFile on the socket's overlapped context: the
// file's bytes go to the socket in the kernel, from the offset the
// OVERLAPPED names, and complete through the port as a WSASend does.
func (p *iocp) PostSendFile(r Ref, f File, off int64, n int) (int, bool, error) {
	st := p.socks.get(r)
	ctx, err := p.ctxs.get(ctxSend, st)
	if err != nil {
		return 0, false, err
	}
	ctx.ov.Offset = uint32(off)
	ctx.ov.OffsetHigh = uint32(uint64(off) >> 32)
	err = windows.TransmitFile(st.s, windows.Handle(f), uint32(min(n, maxSendFile)), 0, &ctx.ov, nil, 0)
	if err != nil && err != windows.ERROR_IO_PENDING {
		p.ctxs.put(ctx)
		return 0, false, err
	}
	st.sending, st.transmit = true, true
	return 0, false, nil
}

// sockID names a socket's state as a context does: by slot and generation.
type sockID struct{ slot, gen uint32 }

// recancelEvery bounds a Wait while a canceled TransmitFile is in the
// kernel, in milliseconds.
const recancelEvery = 50

// cancelAgain cancels again the TransmitFiles that were canceled and have
// not completed, and reports whether there are any. Wine has been seen to
// miss such a cancel (about one abort in twenty, of a TransmitFile to a
// peer that does not read): the connection then waited for good.
func (p *iocp) cancelAgain() bool {
	keep := p.recancel[:0]
	for _, id := range p.recancel {
		if st := p.socks.match(int(id.slot), id.gen, ^uint32(0)); st != nil && st.transmit {
			windows.CancelIoEx(st.s, nil)
			keep = append(keep, id)
		}
	}
	p.recancel = keep
	return len(keep) > 0
}

// SendFileRefused reports whether err, from PostSendFile, means the
// socket or the file does not take TransmitFile: the caller copies the
// bytes instead.
func SendFileRefused(err error) bool {
	return errors.Is(err, windows.WSAEOPNOTSUPP) || errors.Is(err, windows.ERROR_NOT_SUPPORTED) ||
		errors.Is(err, windows.ERROR_INVALID_FUNCTION) || errors.Is(err, windows.ERROR_CALL_NOT_IMPLEMENTED)
}

// DupFile duplicates the handle f (not inheritable): the caller owns the
// copy and closes it.
func DupFile(f File) (File, error) {
	me := windows.CurrentProcess()
	var h windows.Handle
	if err := windows.DuplicateHandle(me, windows.Handle(f), me, &h, 0, false, windows.DUPLICATE_SAME_ACCESS); err != nil {
		return 0, err
	}
	return File(h), nil
}
