// Package main is the pyiocp CPython extension: module.c defines the module
// and its types with the C API, and calls the functions exported here.
// Built with -buildmode=c-shared into pyiocp/_pyiocp<EXT_SUFFIX>.
package main

/*
#cgo CFLAGS: -O2 -Wall -Wno-unused-parameter
#cgo windows LDFLAGS: -lws2_32
#include "glue.h"
*/
import "C"

import (
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

func main() {}

// setErr fills e (when not nil) with err's code and returns the code.
func setErr(e *C.pyiocp_error, err error) C.int {
	code, errno := classify(err)
	if e != nil {
		e.code = C.int32_t(code)
		e.err_errno = C.int32_t(errno)
		msg := ""
		// A bare errno is worded by the C side (strerror, as Python words
		// it), but strerror knows no Windows error: Go words those.
		if _, bare := err.(syscall.Errno); err != nil && (!bare || runtime.GOOS == "windows") {
			msg = err.Error()
		}
		putString(e.msg[:], msg)
	}
	return C.int(code)
}

// classify maps err to its error code (and errno for OS errors).
func classify(err error) (code int32, errno int32) {
	if err == nil {
		return C.PYIOCP_OK, 0 // every send: no allocation on this path
	}
	return classifyFailure(err)
}

// classifyFailure is classify for a non-nil error: errors.As makes its
// targets escape, so they are declared only here.
func classifyFailure(err error) (code int32, errno int32) {
	var oe *engine.OptionError
	var re *engine.ResolveError
	var pe *engine.ProtocolError
	var te *engine.TLSError
	var en syscall.Errno
	switch {
	case errors.As(err, &te):
		return C.PYIOCP_E_TLS, 0
	case errors.Is(err, engine.ErrClosed):
		return C.PYIOCP_E_CLOSED, 0
	case errors.Is(err, engine.ErrBufferFull):
		return C.PYIOCP_E_BUFFER_FULL, 0
	case errors.Is(err, engine.ErrManagerClosed):
		return C.PYIOCP_E_MANAGER_CLOSED, 0
	case errors.Is(err, engine.ErrTimeout):
		return C.PYIOCP_E_TIMEOUT, 0
	case errors.Is(err, engine.ErrTooManyConnections):
		return C.PYIOCP_E_TOO_MANY_CONNS, 0
	case errors.As(err, &re):
		return C.PYIOCP_E_RESOLVE, 0
	case errors.As(err, &pe):
		return C.PYIOCP_E_PROTOCOL, 0
	case errors.As(err, &oe):
		return C.PYIOCP_E_VALUE, 0
	case errors.As(err, &en):
		return C.PYIOCP_E_OS, int32(en)
	}
	return C.PYIOCP_E_OTHER, 0
}

// putString copies s into a C char array, truncated and NUL-terminated.
func putString(dst []C.char, s string) {
	n := min(len(s), len(dst)-1)
	for i := 0; i < n; i++ {
		dst[i] = C.char(s[i])
	}
	dst[n] = 0
}

func duration(ns C.int64_t) time.Duration { return time.Duration(ns) }

// pyiocpBackends writes the names of the backends that work here,
// preferred first and separated by spaces, into out (n bytes).
//
//export pyiocpBackends
func pyiocpBackends(out *C.char, n C.int) {
	putString(unsafe.Slice(out, int(n)), strings.Join(engine.Backends(), " "))
}

// epoch is where pyiocpMonotonicNs counts from.
var epoch = time.Now()

// pyiocpMonotonicNs is a monotonic clock in nanoseconds, for the C side's
// poll deadlines (Go's clock: C has no portable monotonic one).
//
//export pyiocpMonotonicNs
func pyiocpMonotonicNs() C.int64_t { return C.int64_t(time.Since(epoch)) }

func conn(h C.int64_t, slot C.uint32_t, id C.uint64_t) *engine.Conn {
	e := lookup(int64(h))
	if e == nil {
		return nil
	}
	return e.m.Lookup(uint32(slot), uint64(id))
}

// target is the manager of handle h and the address a listen or connect
// names.
func target(h C.int64_t, ip *C.char, port C.int) (*entry, netip.AddrPort, error) {
	ent := lookup(int64(h))
	if ent == nil {
		return nil, netip.AddrPort{}, engine.ErrManagerClosed
	}
	addr, err := engine.ParseAddr(C.GoString(ip), int(port))
	return ent, addr, err
}

//export pyiocpNew
func pyiocpNew(o *C.pyiocp_options, backend *C.char, h *C.int64_t, e *C.pyiocp_error) C.int {
	ent := newEntry()
	opts := []engine.Option{
		engine.WithWorkers(int(o.workers)),
		engine.WithBackend(C.GoString(backend)),
		engine.WithRecvBufferLimit(int(o.recv_buffer_limit)),
		engine.WithSendBufferLimit(int(o.send_buffer_limit)),
		engine.WithIdleTimeout(time.Duration(o.idle_timeout_ns)),
		engine.WithAcceptTimeout(time.Duration(o.accept_timeout_ns)),
		engine.WithCloseTimeout(time.Duration(o.close_timeout_ns)),
		engine.WithMaxConnections(int(o.max_connections)),
		engine.WithEvents(engine.EventMask(o.events)),
		engine.WithFixedThreads(o.fixed_threads != 0),
		engine.WithLogger(ent.log),
	}
	if o.send_low_watermark >= 0 {
		opts = append(opts, engine.WithSendLowWatermark(int(o.send_low_watermark)))
	}
	m, err := engine.New(nil, opts...)
	if err != nil {
		return setErr(e, err)
	}
	ent.m = m
	ent.ticks = make([]schedTick, m.Workers())
	handle, ok := register(ent)
	if !ok {
		m.Close(0)
		return setErr(e, syscall.EMFILE)
	}
	addWorkers(m.Workers()) // until pyiocpRelease unregisters it
	*h = C.int64_t(handle)
	return C.PYIOCP_OK
}

//export pyiocpListen
func pyiocpListen(h C.int64_t, ip *C.char, port, backlog, accepts, reusePort, firstData C.int, so *C.pyiocp_sockopts,
	fr *C.pyiocp_framing, tlsHandle C.int64_t, proxyMode C.int, proxyAllow *C.char, lh *C.int64_t, boundPort *C.int,
	e *C.pyiocp_error) C.int {
	ent, addr, err := target(h, ip, port)
	if err != nil {
		return setErr(e, err)
	}
	withTLS, err := listenTLS(tlsHandle)
	if err != nil {
		return setErr(e, err)
	}
	withProxy, err := listenProxy(proxyMode, proxyAllow)
	if err != nil {
		return setErr(e, err)
	}
	l, err := ent.m.Listen(addr, append(withTLS, withProxy, engine.WithBacklog(int(backlog)), engine.WithAccepts(int(accepts)),
		engine.WithReusePort(reusePort != 0), engine.WithFirstData(firstData != 0), engine.WithSockOptions(sockOptions(so)),
		engine.WithFraming(framing(fr)))...)
	if err != nil {
		return setErr(e, err)
	}
	*lh = C.int64_t(ent.keepListener(l))
	*boundPort = C.int(l.Addr().Port())
	return C.PYIOCP_OK
}

// keepListener names l by a new handle, which Python holds.
func (ent *entry) keepListener(l *engine.Listener) int64 {
	ent.lmu.Lock()
	defer ent.lmu.Unlock()
	ent.nextL++
	ent.listeners[ent.nextL] = l
	return ent.nextL
}

//export pyiocpListenerClose
func pyiocpListenerClose(h, lh C.int64_t) {
	ent := lookup(int64(h))
	if ent == nil {
		return
	}
	ent.lmu.Lock()
	l := ent.listeners[int64(lh)]
	delete(ent.listeners, int64(lh))
	ent.lmu.Unlock()
	if l != nil {
		l.Close()
	}
}

// pyiocpListenerWaiting is 1 while connections wait in listener lh's
// backlog and no worker has taken the listener up (engine.Listener.Waiting).
//
//export pyiocpListenerWaiting
func pyiocpListenerWaiting(h, lh C.int64_t) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return 0
	}
	ent.lmu.Lock()
	l := ent.listeners[int64(lh)]
	ent.lmu.Unlock()
	if l != nil && l.Waiting() {
		return 1
	}
	return 0
}

// pyiocpConnect connects to host, an IP address or a name resolved off
// this thread (engine.Manager.ConnectHost).
//
//export pyiocpConnect
func pyiocpConnect(h C.int64_t, host *C.char, port C.int, timeoutNs C.int64_t, so *C.pyiocp_sockopts,
	fr *C.pyiocp_framing, tlsHandle C.int64_t, slot *C.uint32_t, id *C.uint64_t, e *C.pyiocp_error) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return setErr(e, engine.ErrManagerClosed)
	}
	if port < 1 || port > 65535 {
		return setErr(e, &engine.OptionError{Name: "port", Value: int(port), Reason: "must be 1-65535"})
	}
	t, err := tlsConfig(tlsHandle)
	if err != nil {
		return setErr(e, err)
	}
	var c *engine.Conn
	if t != nil {
		c, err = ent.m.ConnectTLS(C.GoString(host), uint16(port), duration(timeoutNs), t.client, t.timeout, sockOptions(so))
	} else {
		c, err = ent.m.ConnectHost(C.GoString(host), uint16(port), duration(timeoutNs), sockOptions(so))
	}
	if err != nil {
		return setErr(e, err)
	}
	return connected(c, fr, slot, id, e)
}

// connected gives a new outbound connection its framing and names it to
// the caller.
func connected(c *engine.Conn, fr *C.pyiocp_framing, slot *C.uint32_t, id *C.uint64_t, e *C.pyiocp_error) C.int {
	if f := framing(fr); f != nil {
		// Queued behind the connect: the worker takes it before it posts
		// the connection's first receive.
		if err := c.SetFraming(f); err != nil {
			c.Abort()
			return setErr(e, err)
		}
	}
	*slot = C.uint32_t(c.Slot())
	*id = C.uint64_t(c.ID())
	return C.PYIOCP_OK
}

// pyiocpPoll runs one round of a worker (the caller has released the GIL)
// for poller (0: the worker's one driving thread; else the calling
// thread's id, several of which may poll one worker) and writes its events
// into evs. With *held set the caller holds the worker, and the events'
// data stays valid, until it calls pyiocpPollDone; *held is 0 when the
// timeout passed while another thread held it. *quit is set once the
// worker has finished after shutdown; *logs tells how many log lines wait
// for pyiocpTakeLog.
//
//export pyiocpPoll
func pyiocpPoll(h C.int64_t, worker C.int, poller C.uint64_t, evs *C.pyiocp_event, max C.int, timeoutNs C.int64_t,
	quit, logs, held *C.int) C.int {
	*held = 0
	*logs = 0
	ent := lookup(int64(h))
	if ent == nil || worker < 0 || int(worker) >= ent.m.Workers() {
		*quit = 1
		return 0
	}
	ent.ticks[worker].tick()
	events, q, ok := ent.m.PollShared(int(worker), uint64(poller), int(max), duration(timeoutNs))
	out := unsafe.Slice(evs, int(max))
	for i := range events {
		fill(ent, &out[i], &events[i])
	}
	*quit = 0
	if q {
		*quit = 1
	}
	if ok {
		*held = 1
	}
	*logs = C.int(ent.nlogs.Load())
	return C.int(len(events))
}

// pyiocpPollPark is pyiocpPoll for a caller that watches pyiocpWaitFD from
// its own event loop: it never blocks in the port, and the caller always
// holds the worker after it (pyiocpPollDone). *park is 0 to poll again at
// once, else the worker is parked until the descriptor turns readable or
// *park nanoseconds pass (-1: no deadline).
//
//export pyiocpPollPark
func pyiocpPollPark(h C.int64_t, worker C.int, poller C.uint64_t, evs *C.pyiocp_event, max C.int,
	quit, logs *C.int, park *C.int64_t) C.int {
	*logs = 0
	*park = 0
	ent := lookup(int64(h))
	if ent == nil || worker < 0 || int(worker) >= ent.m.Workers() {
		*quit = 1
		return 0
	}
	ent.ticks[worker].tick()
	events, q, wait := ent.m.PollPark(int(worker), uint64(poller), int(max))
	out := unsafe.Slice(evs, int(max))
	for i := range events {
		fill(ent, &out[i], &events[i])
	}
	*quit = 0
	if q {
		*quit = 1
	}
	switch {
	case wait < 0:
		*park = -1
	case wait > 0:
		*park = C.int64_t(wait)
	}
	*logs = C.int(ent.nlogs.Load())
	return C.int(len(events))
}

// pyiocpWaitFD is worker's descriptor for pyiocpPollPark's caller to
// watch, or -1 where the port has none.
//
//export pyiocpWaitFD
func pyiocpWaitFD(h C.int64_t, worker C.int) C.int {
	ent := lookup(int64(h))
	if ent == nil || worker < 0 || int(worker) >= ent.m.Workers() {
		return -1
	}
	if fd, ok := ent.m.WaitFD(int(worker)); ok {
		return C.int(fd)
	}
	return -1
}

// pyiocpPollDone ends the hold a pyiocpPoll gave (*held set).
//
//export pyiocpPollDone
func pyiocpPollDone(h C.int64_t, worker C.int) {
	if ent := lookup(int64(h)); ent != nil {
		ent.m.EndPoll(int(worker))
	}
}

// pyiocpReleasePoller lets go of the connections a polling thread that
// stops polling still holds.
//
//export pyiocpReleasePoller
func pyiocpReleasePoller(h C.int64_t, worker C.int, poller C.uint64_t) {
	if ent := lookup(int64(h)); ent != nil && worker >= 0 && int(worker) < ent.m.Workers() {
		ent.m.ReleasePoller(int(worker), uint64(poller))
	}
}

func fill(ent *entry, out *C.pyiocp_event, ev *engine.Event) {
	out.kind = C.uint8_t(ev.Kind)
	out.data = nil
	out.n = 0
	out.value = 0
	out.err.code = 0
	if c := ev.Conn; c != nil {
		out.slot = C.uint32_t(c.Slot())
		out.id = C.uint64_t(c.ID())
	}
	switch ev.Kind {
	case engine.EventAccept, engine.EventConnect: // a ConnectHost's peer is known from its connect
		if ev.Conn.IsUnix() && !ev.Conn.Peer().IsValid() { // unless a PROXY header named a client
			out.family = 1 // the names: pyiocpConnUnixName
			break
		}
		peer := c4or6(ev.Conn.Peer())
		out.family = 6
		if peer.Addr().Is4() {
			out.family = 4
		}
		ip := peer.Addr().As16()
		for i := range ip {
			out.ip[i] = C.uint8_t(ip[i])
		}
		out.port = C.uint16_t(peer.Port())
	case engine.EventRecv:
		// Data is outside the Go heap (the poller's arena or the worker's
		// spill memory) and stays valid while the caller holds the worker.
		out.data = (*C.char)(unsafe.Pointer(unsafe.SliceData(ev.Data)))
		out.n = C.int64_t(len(ev.Data))
	case engine.EventSend:
		out.n = C.int64_t(ev.N)
	case engine.EventClose:
		setErr(&out.err, ev.Err)
	case engine.EventDatagram:
		fillDatagram(ent, out, ev)
	case engine.EventPost:
		out.value = C.uint64_t(ev.Value.(uint64))
	case engine.EventTimer:
		t := ev.Value.(*engine.Timer)
		out.value = C.uint64_t(ent.timerDone(t))
		if ev.Conn != nil {
			out.n = timerOfConn // slot and id name it
		}
		if t.Canceled() {
			out.n |= timerCancelled // its connection closed: nothing to run
		}
	}
}

func c4or6(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

//export pyiocpTakeLog
func pyiocpTakeLog(h C.int64_t, buf *C.char, n C.int) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return 0
	}
	s, ok := ent.takeLog()
	if !ok {
		return 0
	}
	putString(unsafe.Slice(buf, int(n)), s)
	return 1
}

// pyiocpSend queues (or, now set, writes at once: engine.Conn.SendNow) a
// Connection.send.
//
//export pyiocpSend
func pyiocpSend(h C.int64_t, slot C.uint32_t, id C.uint64_t, p *C.char, n C.size_t, now C.int) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return C.PYIOCP_E_CLOSED
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))
	if now != 0 {
		return setErr(nil, c.SendNow(b))
	}
	return setErr(nil, c.Send(b))
}

// Connection operations for pyiocpConnOp.
const (
	opClose = iota
	opAbort
	opShutdownWrite
	opPauseReading
	opResumeReading
)

//export pyiocpConnOp
func pyiocpConnOp(h C.int64_t, slot C.uint32_t, id C.uint64_t, op C.int) C.int {
	c := conn(h, slot, id)
	if c == nil {
		if op == opClose || op == opAbort {
			return C.PYIOCP_OK // idempotent: already gone
		}
		return C.PYIOCP_E_CLOSED
	}
	var err error
	switch op {
	case opClose:
		err = c.Close()
	case opAbort:
		err = c.Abort()
	case opShutdownWrite:
		err = c.ShutdownWrite()
	case opPauseReading:
		err = c.PauseReading()
	case opResumeReading:
		err = c.ResumeReading()
	}
	return setErr(nil, err)
}

// pyiocpConnState reports pending bytes (-1 once gone) and whether the
// connection is closing or closed.
//
//export pyiocpConnState
func pyiocpConnState(h C.int64_t, slot C.uint32_t, id C.uint64_t, closed *C.int) C.int64_t {
	c := conn(h, slot, id)
	if c == nil {
		*closed = 1
		return -1
	}
	*closed = 0
	if c.Closed() {
		*closed = 1
	}
	return C.int64_t(c.Pending())
}

//export pyiocpConnLocal
func pyiocpConnLocal(h C.int64_t, slot C.uint32_t, id C.uint64_t, ip *C.uint8_t, port *C.uint16_t) C.int {
	c := conn(h, slot, id)
	if c == nil {
		return 0
	}
	if c.IsUnix() {
		return 1 // the name: pyiocpConnUnixName
	}
	return putAddr(c.Local(), ip, port)
}

// putAddr writes a into ip (16 bytes, IPv4 mapped) and port: its family, 4
// or 6, or 0 when a is not valid.
func putAddr(a netip.AddrPort, ip *C.uint8_t, port *C.uint16_t) C.int {
	a = c4or6(a)
	if !a.IsValid() {
		return 0
	}
	b := a.Addr().As16()
	copy(unsafe.Slice((*byte)(unsafe.Pointer(ip)), 16), b[:])
	*port = C.uint16_t(a.Port())
	if a.Addr().Is4() {
		return 4
	}
	return 6
}

//export pyiocpGet
func pyiocpGet(h C.int64_t, id C.uint64_t, slot *C.uint32_t) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return 0
	}
	c := ent.m.Get(uint64(id))
	if c == nil {
		return 0
	}
	*slot = C.uint32_t(c.Slot())
	return 1
}

// pyiocpPost queues value (a PyObject * with a reference the caller gave
// up) for a worker; on failure the caller keeps the reference.
//
//export pyiocpPost
func pyiocpPost(h C.int64_t, value C.uint64_t) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return C.PYIOCP_E_MANAGER_CLOSED
	}
	return setErr(nil, ent.m.Post(uint64(value)))
}

//export pyiocpShutdown
func pyiocpShutdown(h C.int64_t, timeoutNs C.int64_t) {
	if ent := lookup(int64(h)); ent != nil {
		ent.m.Shutdown(duration(timeoutNs))
	}
}

// pyiocpRelease frees the manager once every worker has quit; 1 when done
// (or already done).
//
//export pyiocpRelease
func pyiocpRelease(h C.int64_t) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return 1
	}
	if !ent.m.Release() {
		return 0
	}
	unregister(int64(h))
	addWorkers(-ent.m.Workers())
	return 1
}

//export pyiocpWorkers
func pyiocpWorkers(h C.int64_t) C.int {
	if ent := lookup(int64(h)); ent != nil {
		return C.int(ent.m.Workers())
	}
	return 0
}

//export pyiocpStats
func pyiocpStats(h C.int64_t, out *C.pyiocp_stats) C.int {
	ent := lookup(int64(h))
	if ent == nil {
		return 0
	}
	s := ent.m.Stats()
	out.connections = C.int64_t(s.Connections)
	out.accepted = C.int64_t(s.Accepted)
	out.connected = C.int64_t(s.Connected)
	out.closed = C.int64_t(s.Closed)
	out.rejected = C.int64_t(s.Rejected)
	out.timed_out = C.int64_t(s.TimedOut)
	out.bytes_in = C.int64_t(s.BytesIn)
	out.bytes_out = C.int64_t(s.BytesOut)
	out.pending_send_bytes = C.int64_t(s.PendingSendBytes)
	out.paused_reading = C.int64_t(s.PausedReading)
	out.completions = C.int64_t(s.Completions)
	out.accept_errors = C.int64_t(s.AcceptErrors)
	out.accept_error_episodes = C.int64_t(s.AcceptErrorEpisodes)
	out.stray = C.int64_t(s.Stray)
	out.listeners = C.int64_t(s.Listeners)
	out.workers = C.int64_t(s.Workers)
	out.tls_connections = C.int64_t(s.TLSConnections)
	out.tls_handshake_errors = C.int64_t(s.TLSHandshakeErrors)
	out.proxy_errors = C.int64_t(s.ProxyErrors)
	out.endpoints = C.int64_t(s.Endpoints)
	out.datagrams_in = C.int64_t(s.DatagramsIn)
	out.datagrams_out = C.int64_t(s.DatagramsOut)
	out.datagrams_truncated = C.int64_t(s.DatagramsTruncated)
	out.datagram_errors = C.int64_t(s.DatagramErrors)
	putString(out.backend[:], s.Backend)
	return 1
}
