package poller

import (
	"errors"
	"net/netip"
	"unsafe"
)

// Datagram sockets (UDP). A datagram is never split or merged: each
// receive takes one whole datagram into a buffer of its own (a slot of
// the socket's receive memory on epoll and IOCP, a buffer of the port's
// datagram ring on io_uring), and each send is one datagram. A datagram
// longer than the socket's receive size is not delivered short: its completion carries ErrTruncated and its
// length (N), no Data. A socket's posted receives run side by side
// (IOCP), so its datagrams may complete in another order than
// they arrived: UDP promises none.

// Datagram is one datagram to send: Data to Addr, or to a connected
// socket's peer when Addr is the zero AddrPort.
type Datagram struct {
	Data []byte
	Addr netip.AddrPort
}

// MaxSendTo bounds the datagrams one PostSendTo sends: what passes it
// waits for the next post.
const MaxSendTo = 64

// MaxDatagramSlots bounds the receives a datagram socket has outstanding
// (on epoll and IOCP, the slots of its receive memory).
const MaxDatagramSlots = 256

// ErrTruncated ends the receive of a datagram longer than the socket's
// receive size; the completion's N is the datagram's length.
var ErrTruncated = errors.New("poller: datagram larger than the receive size")

// dgramSlots is a datagram socket's receive memory on epoll and IOCP:
// count buffers of size bytes, outside the Go heap (IOCP's kernel writes
// into them after the post returned; io_uring has a buffer ring instead).
// A slot is free, in the kernel, or holds a datagram delivered in round
// r, valid until the next Wait: it is free again once the port's round
// has moved past r.
type dgramSlots struct {
	size   int
	mem    []byte
	state  []int64 // slotFree, slotKernel, or the round it was delivered in
	wanted int     // receives posted and not completed
	kernel int     // slots in the kernel
}

const (
	slotFree   = -2
	slotKernel = -1
)

var errBadSlots = errors.New("poller: bad datagram receive size or slot count")

func newDgramSlots(size, count int) (*dgramSlots, error) {
	if size < 1 || count < 1 || count > MaxDatagramSlots {
		return nil, errBadSlots
	}
	mem, err := AllocMemory(size * count)
	if err != nil {
		return nil, err
	}
	d := &dgramSlots{size: size, mem: mem, state: make([]int64, count)}
	for i := range d.state {
		d.state[i] = slotFree
	}
	return d, nil
}

// buf is slot i's memory.
func (d *dgramSlots) buf(i int) []byte { return d.mem[i*d.size : (i+1)*d.size : (i+1)*d.size] }

// take claims a free slot for the kernel (or a read); -1 when none is
// free in round.
func (d *dgramSlots) take(round int64) int {
	for i, s := range d.state {
		if s == slotFree || (s >= 0 && s < round) {
			d.state[i] = slotKernel
			d.kernel++
			return i
		}
	}
	return -1
}

// delivered marks slot i's datagram handed out in round: the slot is
// reused only after it.
func (d *dgramSlots) delivered(i int, round int64) {
	d.state[i] = round
	d.kernel--
}

// untake gives back a slot the kernel did not take.
func (d *dgramSlots) untake(i int) {
	d.state[i] = slotFree
	d.kernel--
}

// retiredMem is the receive memory of datagram sockets unregistered this
// round: a datagram it holds may still be read by the caller until the
// next Wait, which frees it.
type retiredMem [][]byte

func (r *retiredMem) add(b []byte) { *r = append(*r, b) }

func (r *retiredMem) free() {
	for i, b := range *r {
		FreeMemory(b)
		(*r)[i] = nil
	}
	*r = (*r)[:0]
}

// OpenUDP opens a datagram socket of addr's family bound to addr, and
// connects it to remote when remote is valid (a connected socket takes
// datagrams from remote only, and sends without an address). reusePort
// sets SO_REUSEPORT (Linux; WSAEOPNOTSUPP on Windows), broadcast
// SO_BROADCAST. An IPv6 socket is dual-stack on every OS (IPV6_V6ONLY
// off: Windows' default is on): its addresses are IPv6, IPv4 ones mapped
// (::ffff:a.b.c.d). It returns the socket and the address it is bound to.
func OpenUDP(addr netip.AddrPort, reusePort, broadcast bool, remote netip.AddrPort) (Sock, netip.AddrPort, error) {
	v6 := addr.Addr().Is6() && !addr.Addr().Is4In6()
	s, err := newUDPSocket(v6)
	if err != nil {
		return NoSock, netip.AddrPort{}, err
	}
	err = udpOptions(s, v6, reusePort, broadcast)
	if err == nil {
		err = udpBind(s, addr, v6)
	}
	if err == nil && remote.IsValid() {
		err = udpConnect(s, remote, v6)
	}
	return bound(s, err)
}

// dgramSockaddr is a in the family of the socket (v6: IPv6, an IPv4
// address mapped), for bind and connect.
func dgramSockaddr(a netip.AddrPort, v6 bool) sockaddr {
	if !v6 {
		return &sockaddrInet4{Port: int(a.Port()), Addr: a.Addr().Unmap().As4()}
	}
	return &sockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16(), ZoneId: zoneIndex(a.Addr())}
}

// putSockaddr writes a into rsa in the family of the socket (v6: IPv6,
// an IPv4 address mapped) and returns its length.
func putSockaddr(rsa *rawSockaddrAny, a netip.AddrPort, v6 bool) int32 {
	port := a.Port()<<8 | a.Port()>>8 // network order
	if !v6 {
		p := (*rawSockaddrInet4)(unsafe.Pointer(rsa))
		*p = rawSockaddrInet4{Family: afInet, Port: port, Addr: a.Addr().Unmap().As4()}
		return int32(unsafe.Sizeof(*p))
	}
	p := (*rawSockaddrInet6)(unsafe.Pointer(rsa))
	*p = rawSockaddrInet6{Family: afInet6, Port: port, Addr: a.Addr().As16(), Scope_id: zoneIndex(a.Addr())}
	return int32(unsafe.Sizeof(*p))
}

// rearm takes the datagram sockets waiting on *waiting for the next Wait
// and arms each again (arm may put one back on the list); the list's room
// is kept for reuse.
func rearm[S any](waiting *[]S, arm func(S)) {
	list := *waiting
	*waiting = nil
	for _, st := range list {
		arm(st)
	}
	clear(list)
	if *waiting == nil {
		*waiting = list[:0]
	}
}
