package main

/*
#include "glue.h"
*/
import "C"

import (
	"errors"
	"syscall"
)

// pyiocpSendFile is Connection.sendfile: count bytes (negative: to the
// end) of the file fd (a HANDLE on Windows) from offset, queued by
// engine.Conn.SendFile, which duplicates fd before it returns.
//
//export pyiocpSendFile
func pyiocpSendFile(h C.int64_t, slot C.uint32_t, id C.uint64_t, fd C.uint64_t, offset, count C.int64_t,
	e *C.pyiocp_error) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return C.PYIOCP_E_CLOSED
	}
	return setErr(e, c.SendFile(rawFile(fd), int64(offset), int64(count)))
}

// rawFile is a descriptor the caller keeps open for the call, as a
// syscall.Conn: engine.Conn.SendFile only duplicates it (Control).
type rawFile uintptr

func (f rawFile) SyscallConn() (syscall.RawConn, error) { return f, nil }

func (f rawFile) Control(fn func(fd uintptr)) error {
	fn(uintptr(f))
	return nil
}

func (rawFile) Read(func(fd uintptr) bool) error  { return errors.ErrUnsupported }
func (rawFile) Write(func(fd uintptr) bool) error { return errors.ErrUnsupported }
