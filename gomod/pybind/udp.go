package main

/*
#include "glue.h"
*/
import "C"

import (
	"net/netip"
	"unsafe"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// C names an endpoint by a handle the C side picks (udp.c), so that its
// Python object is in place before the first datagram can be filled.
// fill() looks endpoints up the other way, by pointer, under emu: an
// endpoint forgotten by pyiocpEndpointClose delivers nothing more.

// pyiocpBindUDP binds endpoint eh (engine.Manager.BindUDP); remoteIP ""
// means unconnected, size 0 the engine's receive size. *boundPort is the
// port it is bound to.
//
//export pyiocpBindUDP
func pyiocpBindUDP(h C.int64_t, eh C.int64_t, ip *C.char, port C.int, reusePort, broadcast C.int, remoteIP *C.char,
	remotePort C.int, size C.int, boundPort *C.int, e *C.pyiocp_error) C.int {
	ent, addr, err := target(h, ip, port)
	if err != nil {
		return setErr(e, err)
	}
	opts := []engine.ListenOption{engine.WithReusePort(reusePort != 0), engine.WithBroadcast(broadcast != 0)}
	if r := C.GoString(remoteIP); r != "" {
		remote, err := engine.ParseAddr(r, int(remotePort))
		if err != nil {
			return setErr(e, err)
		}
		opts = append(opts, engine.WithRemote(remote))
	}
	if size != 0 {
		opts = append(opts, engine.WithDatagramSize(int(size)))
	}
	// Held across the bind: the endpoint's first datagram waits in fill
	// until the endpoint has its handle.
	ent.emu.Lock()
	defer ent.emu.Unlock()
	ep, err := ent.m.BindUDP(addr, opts...)
	if err != nil {
		return setErr(e, err)
	}
	if ent.endpoints == nil {
		ent.endpoints = make(map[int64]*engine.Endpoint)
		ent.endpointIDs = make(map[*engine.Endpoint]int64)
	}
	ent.endpoints[int64(eh)] = ep
	ent.endpointIDs[ep] = int64(eh)
	*boundPort = C.int(ep.Addr().Port())
	return C.PYIOCP_OK
}

func endpoint(h, eh C.int64_t) *engine.Endpoint {
	ent := lookup(int64(h))
	if ent == nil {
		return nil
	}
	ent.emu.RLock()
	defer ent.emu.RUnlock()
	return ent.endpoints[int64(eh)]
}

// endpointHandle is ep's handle, 0 once closed (or never named).
func (ent *entry) endpointHandle(ep *engine.Endpoint) int64 {
	ent.emu.RLock()
	defer ent.emu.RUnlock()
	return ent.endpointIDs[ep]
}

// pyiocpSendTo queues one datagram (engine.Endpoint.SendTo); ip "" sends
// to a connected endpoint's remote. Non-blocking: the bytes are copied.
//
//export pyiocpSendTo
func pyiocpSendTo(h, eh C.int64_t, p *C.char, n C.size_t, ip *C.char, port C.int, e *C.pyiocp_error) C.int {
	ep := endpoint(h, eh)
	if ep == nil {
		return setErr(e, engine.ErrClosed)
	}
	var to netip.AddrPort
	if s := C.GoString(ip); s != "" {
		var err error
		if to, err = engine.ParseAddr(s, int(port)); err != nil {
			return setErr(e, err)
		}
	}
	return setErr(e, ep.SendTo(unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n)), to))
}

// pyiocpEndpointClose forgets endpoint eh, so that no more of its
// datagrams are filled, and closes it (what was queued is still sent).
//
//export pyiocpEndpointClose
func pyiocpEndpointClose(h, eh C.int64_t) {
	ent := lookup(int64(h))
	if ent == nil {
		return
	}
	ent.emu.Lock()
	ep := ent.endpoints[int64(eh)]
	delete(ent.endpoints, int64(eh))
	delete(ent.endpointIDs, ep)
	ent.emu.Unlock()
	if ep != nil {
		ep.Close()
	}
}

// pyiocpEndpointClosed is 1 once endpoint eh is closed (by close(), or by
// the manager's shutdown).
//
//export pyiocpEndpointClosed
func pyiocpEndpointClosed(h, eh C.int64_t) C.int {
	if ep := endpoint(h, eh); ep != nil && !ep.Closed() {
		return 0
	}
	return 1
}

// fillDatagram names an EventDatagram's endpoint, data and sender; an
// event of an endpoint closed meanwhile, or of a datagram dropped as
// truncated (counted in the stats), becomes kind 0: nothing to deliver.
func fillDatagram(ent *entry, out *C.pyiocp_event, ev *engine.Event) {
	out.id = C.uint64_t(ent.endpointHandle(ev.Endpoint))
	if out.id == 0 || ev.Err != nil {
		out.kind = 0
		return
	}
	// Data is outside the Go heap, valid while the caller holds the worker.
	out.data = (*C.char)(unsafe.Pointer(unsafe.SliceData(ev.Data)))
	out.n = C.int64_t(len(ev.Data))
	out.family = C.uint8_t(putAddr(ev.Addr, &out.ip[0], &out.port))
}
