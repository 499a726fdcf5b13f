package main

/*
#include "glue.h"
*/
import "C"

import "github.com/pyiocp/pyiocp/gomod/engine"

// pyiocpCloseSocket closes a socket listen_socket was given and could not
// hand over.
//
//export pyiocpCloseSocket
func pyiocpCloseSocket(fd C.int64_t) { engine.CloseSocket(uintptr(fd)) }

// pyiocpListenSocket serves the listening socket fd (engine.ListenSocket),
// which the engine owns from the call on, even when it fails.
//
//export pyiocpListenSocket
func pyiocpListenSocket(h C.int64_t, fd C.int64_t, accepts, firstData C.int, so *C.pyiocp_sockopts,
	fr *C.pyiocp_framing, tlsHandle C.int64_t, proxyMode C.int, proxyAllow *C.char, lh *C.int64_t,
	e *C.pyiocp_error) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		engine.CloseSocket(uintptr(fd))
		return setErr(e, engine.ErrManagerClosed)
	}
	withTLS, err := listenTLS(tlsHandle)
	if err == nil {
		var withProxy engine.ListenOption
		if withProxy, err = listenProxy(proxyMode, proxyAllow); err == nil {
			withTLS = append(withTLS, withProxy)
		}
	}
	if err != nil {
		engine.CloseSocket(uintptr(fd))
		return setErr(e, err)
	}
	l, err := ent.m.ListenSocket(uintptr(fd), append(withTLS, engine.WithAccepts(int(accepts)),
		engine.WithFirstData(firstData != 0), engine.WithSockOptions(sockOptions(so)), engine.WithFraming(framing(fr)))...)
	if err != nil {
		return setErr(e, err)
	}
	*lh = C.int64_t(ent.keepListener(l))
	return C.PYIOCP_OK
}
