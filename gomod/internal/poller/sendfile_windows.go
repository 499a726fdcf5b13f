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
	st.sending = true
	return 0, false, nil
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
