package engine_test

import (
	"net"
	"net/netip"
)

type netUDPPeer struct{ *net.UDPConn }

func openUDPPeer(addr netip.AddrPort) (*netUDPPeer, error) {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	c.SetReadBuffer(1 << 20)
	return &netUDPPeer{c}, nil
}

func (p *netUDPPeer) Addr() netip.AddrPort { return p.LocalAddr().(*net.UDPAddr).AddrPort() }
