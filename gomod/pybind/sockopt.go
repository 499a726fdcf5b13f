package main

/*
#include "glue.h"
*/
import "C"

import (
	"unsafe"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// The socket options of listen, connect and a Connection's methods.

func sockOptions(o *C.pyiocp_sockopts) engine.SockOptions {
	return engine.SockOptions{
		Nagle:     o.nodelay == 0,
		KeepAlive: o.keepalive != 0,
		KeepIdle:  duration(o.keep_idle_ns),
		KeepIntvl: duration(o.keep_intvl_ns),
		KeepCount: int(o.keep_count),
		RecvBuf:   int(o.rcvbuf),
		SendBuf:   int(o.sndbuf),
	}
}

//export pyiocpConnSetNoDelay
func pyiocpConnSetNoDelay(h C.int64_t, slot C.uint32_t, id C.uint64_t, on C.int, e *C.pyiocp_error) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return C.PYIOCP_E_CLOSED
	}
	return setErr(e, c.SetNoDelay(on != 0))
}

//export pyiocpConnSetKeepAlive
func pyiocpConnSetKeepAlive(h C.int64_t, slot C.uint32_t, id C.uint64_t, on C.int, idleNs, intvlNs C.int64_t,
	count C.int, e *C.pyiocp_error) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return C.PYIOCP_E_CLOSED
	}
	return setErr(e, c.SetKeepAlive(on != 0, duration(idleNs), duration(intvlNs), int(count)))
}

// pyiocpConnSetSockOpt is setsockopt with the n bytes at p (C memory).
//
//export pyiocpConnSetSockOpt
func pyiocpConnSetSockOpt(h C.int64_t, slot C.uint32_t, id C.uint64_t, level, opt C.int, p *C.char, n C.int,
	e *C.pyiocp_error) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return C.PYIOCP_E_CLOSED
	}
	return setErr(e, c.SetSockOpt(int(level), int(opt), unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))))
}

// pyiocpConnGetSockOpt is getsockopt into out (n bytes); *got is how many
// the OS filled.
//
//export pyiocpConnGetSockOpt
func pyiocpConnGetSockOpt(h C.int64_t, slot C.uint32_t, id C.uint64_t, level, opt C.int, out *C.char, n C.int,
	got *C.int, e *C.pyiocp_error) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return C.PYIOCP_E_CLOSED
	}
	b, err := c.GetSockOpt(int(level), int(opt), int(n))
	if err != nil {
		return setErr(e, err)
	}
	*got = C.int(copy(unsafe.Slice((*byte)(unsafe.Pointer(out)), int(n)), b))
	return C.PYIOCP_OK
}

// pyiocpConnSetIdleTimeout: ns < 0 gives the connection the manager's idle
// timeout again; 0 none.
//
//export pyiocpConnSetIdleTimeout
func pyiocpConnSetIdleTimeout(h C.int64_t, slot C.uint32_t, id C.uint64_t, ns C.int64_t) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return C.PYIOCP_E_CLOSED
	}
	return setErr(nil, c.SetIdleTimeout(duration(ns)))
}
