package poller

import (
	"net/netip"
	"unsafe"

	"golang.org/x/sys/windows"
)

func (p *iocp) Listen(s Sock, token uint64) (Ref, error) {
	local, err := LocalAddr(s)
	if err != nil {
		return Ref{}, err
	}
	st, r, err := p.add(s, token)
	if err != nil {
		return Ref{}, err
	}
	st.family = windows.AF_INET
	if local.Addr().Is6() {
		st.family = windows.AF_INET6
	}
	return r, nil
}

// PostAccept posts n AcceptEx calls. One that cannot be posted (no socket
// to accept into, say) completes with its error through the next Wait
// instead, so every accept completes exactly once and the listener stays
// open: the engine retries failed accepts after a pause.
func (p *iocp) PostAccept(r Ref, n int) error {
	st := p.socks.get(r)
	for range n {
		ctx, err := p.ctxs.get(ctxAccept, st)
		if err == nil {
			err = p.postAccept(st, ctx)
		}
		if err != nil {
			p.done.push(Completion{Op: OpAccept, Token: st.token, Sock: NoSock, Err: err})
		}
	}
	return nil
}

// postAccept posts ctx's AcceptEx into a new socket; on error ctx is back
// in the pool.
func (p *iocp) postAccept(st *sockState, ctx *ioCtx) error {
	as, err := newSocket(st.family)
	if err != nil {
		p.ctxs.put(ctx)
		return err
	}
	ctx.accepted = as
	buf, dataLen := &ctx.addrs[0], uint32(0)
	if st.first != nil {
		if buf, dataLen, err = p.takeFirstBuf(ctx); err != nil {
			windows.Closesocket(as)
			p.ctxs.put(ctx)
			return err
		}
	}
	err = windows.AcceptEx(st.s, as, buf, dataLen, acceptAddrLen, acceptAddrLen, &ctx.bytes, &ctx.ov)
	if err != nil && err != windows.ERROR_IO_PENDING {
		windows.Closesocket(as)
		p.releaseFirst(ctx)
		p.ctxs.put(ctx)
		return err
	}
	st.accepts++
	if st.first != nil {
		st.first.pending = append(st.first.pending, ctx) // what SweepAccepts looks at
	}
	return nil
}

// peerGone reports accept errors that concern one connection only (its
// client reset or left before the accept finished; Windows says
// ERROR_NETNAME_DELETED or WSAECONNRESET, Wine WSAENOTCONN): the accept is
// posted again instead of being reported.
func peerGone(err error) bool {
	switch err {
	case windows.WSAECONNRESET, windows.ERROR_NETNAME_DELETED, windows.WSAECONNABORTED, windows.WSAENOTCONN:
		return true
	}
	return false
}

// acceptDone reports an AcceptEx; nbytes is what it received with the
// connection (first-data listeners).
func (p *iocp) acceptDone(st *sockState, ctx *ioCtx, nbytes uint32, err error, batch []Completion, n int) int {
	st.accepts--
	as := ctx.accepted
	var data []byte
	addrs, dataLen := &ctx.addrs[0], uint32(0)
	if st.first != nil {
		data, addrs = p.firstDone(st, ctx, nbytes)
		dataLen = firstDataLen
		if as == NoSock && !st.canceled {
			// Swept: its peer stayed silent (closing the socket ends the
			// AcceptEx as aborted). Posted again, unreported.
			err = windows.WSAECONNRESET
		}
	}
	if err == nil {
		// Gives the accepted socket the listener's properties, and makes
		// getpeername, shutdown and the like work on it.
		err = windows.Setsockopt(as, windows.SOL_SOCKET, windows.SO_UPDATE_ACCEPT_CONTEXT,
			(*byte)(unsafe.Pointer(&st.s)), int32(unsafe.Sizeof(st.s)))
	}
	if err != nil {
		p.releaseFirst(ctx)
		if as != NoSock {
			windows.Closesocket(as)
		}
		if peerGone(err) && !st.canceled {
			if err = p.postAccept(st, ctx); err == nil {
				return n
			}
		} else {
			p.ctxs.put(ctx)
		}
		batch[n] = Completion{Op: OpAccept, Token: st.token, Sock: NoSock, Err: err}
		return n + 1
	}
	var local, remote *windows.RawSockaddrAny
	var llen, rlen int32
	windows.GetAcceptExSockaddrs(addrs, dataLen, acceptAddrLen, acceptAddrLen, &local, &llen, &remote, &rlen)
	batch[n] = Completion{Op: OpAccept, Token: st.token, Sock: as, Peer: fromRaw(remote), Data: data}
	p.releaseFirst(ctx) // the addresses were read from it
	p.ctxs.put(ctx)
	return n + 1
}

// PostConnect starts a ConnectEx; it always completes through the port.
func (p *iocp) PostConnect(r Ref, addr netip.AddrPort) (bool, error) {
	st := p.socks.get(r)
	ctx, err := p.ctxs.get(ctxConnect, st)
	if err != nil {
		return false, err
	}
	err = windows.ConnectEx(st.s, toSockaddr(addr), nil, 0, nil, &ctx.ov)
	if err != nil && err != windows.ERROR_IO_PENDING {
		p.ctxs.put(ctx)
		return false, err
	}
	st.connecting = true
	return false, nil
}

func (p *iocp) connectDone(st *sockState, ctx *ioCtx, err error, batch []Completion, n int) int {
	st.connecting = false
	p.ctxs.put(ctx)
	if err == nil {
		// Makes getpeername, shutdown and the like work on the socket.
		err = windows.Setsockopt(st.s, windows.SOL_SOCKET, windows.SO_UPDATE_CONNECT_CONTEXT, nil, 0)
	}
	batch[n] = Completion{Op: OpConnect, Token: st.token, Err: err}
	return n + 1
}
