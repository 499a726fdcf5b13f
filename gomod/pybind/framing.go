package main

/*
#include "glue.h"
*/
import "C"

import (
	"unsafe"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// framing turns a pyiocp_framing into the engine's (nil: none).
func framing(f *C.pyiocp_framing) engine.Framing {
	switch f.kind {
	case C.PYIOCP_FRAMING_LINES:
		return &engine.Lines{
			MaxLine:        int(f.max),
			Terminator:     C.GoBytes(unsafe.Pointer(&f.term[0]), C.int(f.term_len)),
			KeepTerminator: f.keep_terminator != 0,
		}
	case C.PYIOCP_FRAMING_LENGTH:
		return &engine.LengthPrefixed{
			HeaderSize:   int(f.header_size),
			LittleEndian: f.little_endian != 0,
			MaxSize:      int(f.max),
		}
	}
	return nil
}

// pyiocpSetFraming sets a connection's framing. With worker >= 0 the
// caller is the thread dispatching that worker's batch, at event k: if
// the connection is that worker's, its bytes after event k are split
// again and *uncut is set (the caller then skips the connection's recv
// and eof events after k; engine.Conn.SetFramingInBatch).
//
//export pyiocpSetFraming
func pyiocpSetFraming(h C.int64_t, slot C.uint32_t, id C.uint64_t, fr *C.pyiocp_framing, worker, k C.int,
	uncut *C.int, e *C.pyiocp_error) C.int {
	*uncut = 0
	c := conn(h, slot, id)
	if c == nil {
		return setErr(e, engine.ErrClosed)
	}
	f := framing(fr)
	if worker < 0 {
		return setErr(e, c.SetFraming(f))
	}
	did, err := c.SetFramingInBatch(f, int(worker), int(k))
	if did {
		*uncut = 1
	}
	return setErr(e, err)
}

//export pyiocpSendFrame
func pyiocpSendFrame(h C.int64_t, slot C.uint32_t, id C.uint64_t, p *C.char, n C.size_t, now C.int, e *C.pyiocp_error) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return setErr(e, engine.ErrClosed)
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
	if now != 0 {
		return setErr(e, c.SendFrameNow(b))
	}
	return setErr(e, c.SendFrame(b))
}
