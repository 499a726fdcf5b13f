package main

/*
#include "glue.h"
*/
import "C"

import (
	"os"
	"unsafe"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// Unix domain sockets for Python: names are bytes with a length (an
// abstract one starts with NUL), as os.fsencode gives them.

//export pyiocpListenUnix
func pyiocpListenUnix(h C.int64_t, path *C.char, pathLen C.int, mode, backlog, accepts C.int, fr *C.pyiocp_framing,
	tlsHandle C.int64_t, proxyMode C.int, lh *C.int64_t, e *C.pyiocp_error) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return setErr(e, engine.ErrManagerClosed)
	}
	withTLS, err := listenTLS(tlsHandle)
	if err != nil {
		return setErr(e, err)
	}
	withProxy, err := listenProxy(proxyMode, nil) // a Unix domain peer is always allowed
	if err != nil {
		return setErr(e, err)
	}
	l, err := ent.m.ListenUnix(C.GoStringN(path, pathLen), os.FileMode(mode), append(withTLS, withProxy,
		engine.WithBacklog(int(backlog)), engine.WithAccepts(int(accepts)), engine.WithFraming(framing(fr)))...)
	if err != nil {
		return setErr(e, err)
	}
	*lh = C.int64_t(ent.keepListener(l))
	return C.PYIOCP_OK
}

//export pyiocpConnectUnix
func pyiocpConnectUnix(h C.int64_t, path *C.char, pathLen C.int, timeoutNs C.int64_t, fr *C.pyiocp_framing,
	slot *C.uint32_t, id *C.uint64_t, e *C.pyiocp_error) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return setErr(e, engine.ErrManagerClosed)
	}
	c, err := ent.m.ConnectUnix(C.GoStringN(path, pathLen), duration(timeoutNs))
	if err != nil {
		return setErr(e, err)
	}
	return connected(c, fr, slot, id, e)
}

// pyiocpConnUnixName copies a Unix domain connection's own name (peer 0)
// or its peer's into buf (at most size bytes, not NUL-terminated) and
// returns its length; -1 when the connection is gone.
//
//export pyiocpConnUnixName
func pyiocpConnUnixName(h C.int64_t, slot C.uint32_t, id C.uint64_t, peer C.int, buf *C.char, size C.int) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return -1
	}
	local, remote := c.UnixNames()
	name := local
	if peer != 0 {
		name = remote
	}
	n := copy(unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(size)), name)
	return C.int(n)
}
