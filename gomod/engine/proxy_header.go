package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// The PROXY protocol's header (HAProxy's proxy-protocol.txt), versions 1
// (one text line) and 2 (binary), as a load balancer sends it first on
// each connection it opens to a server: the client's address and the one
// it connected to.

// ProxyMode is which PROXY protocol header a listener expects.
type ProxyMode uint8

const (
	ProxyOff  ProxyMode = iota // no header
	ProxyV1                    // the text form
	ProxyV2                    // the binary form
	ProxyAuto                  // either, told apart by the first byte
)

const (
	proxyV1Max    = 107 // the longest v1 line, "\r\n" included
	proxyV2Fixed  = 16  // signature, version and command, family, length
	proxyV2MaxLen = 16 + 65535
)

var (
	proxyV1Prefix = []byte("PROXY ")
	proxyV2Sig    = []byte("\r\n\r\n\x00\r\nQUIT\n")

	errProxyMissing = errors.New("no PROXY protocol header")
)

// proxyHeader is a parsed header. local: the proxy speaks for itself (v2
// LOCAL, a health check; v1 UNKNOWN; a family other than TCP over IPv4
// or IPv6): the connection's own addresses stand.
type proxyHeader struct {
	src, dst netip.AddrPort
	local    bool
}

// parseProxyHeader reads the header b starts with. n is its length, 0
// (with a nil error) while b is a valid beginning that needs more bytes.
func parseProxyHeader(b []byte, mode ProxyMode) (h proxyHeader, n int, err error) {
	if len(b) == 0 {
		return h, 0, nil
	}
	if mode == ProxyAuto {
		switch b[0] {
		case proxyV1Prefix[0]:
			mode = ProxyV1
		case proxyV2Sig[0]:
			mode = ProxyV2
		default:
			return h, 0, errProxyMissing
		}
	}
	if mode == ProxyV1 {
		return parseProxyV1(b)
	}
	return parseProxyV2(b)
}

func parseProxyV1(b []byte) (h proxyHeader, n int, err error) {
	if !bytes.HasPrefix(b, proxyV1Prefix[:min(len(b), len(proxyV1Prefix))]) {
		return h, 0, errProxyMissing
	}
	end := bytes.Index(b[:min(len(b), proxyV1Max)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= proxyV1Max {
			return h, 0, errors.New("PROXY v1 header: no CRLF within 107 bytes")
		}
		return h, 0, nil
	}
	fields := bytes.Split(b[len(proxyV1Prefix):end], []byte(" "))
	switch string(fields[0]) {
	case "UNKNOWN":
		return proxyHeader{local: true}, end + 2, nil
	case "TCP4", "TCP6":
	default:
		return h, 0, errors.New("PROXY v1 header: unknown protocol " + strconv.Quote(string(fields[0])))
	}
	if len(fields) != 5 {
		return h, 0, errors.New("PROXY v1 header: want protocol, two addresses and two ports")
	}
	v4 := string(fields[0]) == "TCP4"
	if h.src, err = proxyV1Addr(fields[1], fields[3], v4); err == nil {
		h.dst, err = proxyV1Addr(fields[2], fields[4], v4)
	}
	if err != nil {
		return proxyHeader{}, 0, err
	}
	return h, end + 2, nil
}

func proxyV1Addr(ip, port []byte, v4 bool) (netip.AddrPort, error) {
	a, err := netip.ParseAddr(string(ip))
	if err != nil || a.Is4() != v4 || a.Zone() != "" {
		return netip.AddrPort{}, errors.New("PROXY v1 header: bad address " + strconv.Quote(string(ip)))
	}
	p, err := strconv.ParseUint(string(port), 10, 16)
	if err != nil || len(port) > 1 && port[0] == '0' {
		return netip.AddrPort{}, errors.New("PROXY v1 header: bad port " + strconv.Quote(string(port)))
	}
	return netip.AddrPortFrom(a, uint16(p)), nil
}

func parseProxyV2(b []byte) (h proxyHeader, n int, err error) {
	if !bytes.HasPrefix(b, proxyV2Sig[:min(len(b), len(proxyV2Sig))]) {
		return h, 0, errProxyMissing
	}
	if len(b) < proxyV2Fixed {
		return h, 0, nil
	}
	verCmd, fam := b[12], b[13]
	n = proxyV2Fixed + int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 {
		return h, 0, errors.New("PROXY v2 header: version " + strconv.Itoa(int(verCmd>>4)))
	}
	if cmd := verCmd & 0xf; cmd > 1 {
		return h, 0, errors.New("PROXY v2 header: command " + strconv.Itoa(int(cmd)))
	}
	if len(b) < n {
		return h, 0, nil
	}
	body := b[proxyV2Fixed:n]
	if verCmd&0xf == 0 { // LOCAL
		return proxyHeader{local: true}, n, nil
	}
	switch fam {
	case 0x11: // TCP over IPv4
		if len(body) < 12 {
			return h, 0, errors.New("PROXY v2 header: TCP4 addresses cut short")
		}
		h.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		h.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case 0x21: // TCP over IPv6
		if len(body) < 36 {
			return h, 0, errors.New("PROXY v2 header: TCP6 addresses cut short")
		}
		h.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
		h.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
	default:
		// UNSPEC, Unix or datagram addresses: nothing the connection's
		// peer could be; the spec says to keep the connection's own.
		h.local = true
	}
	return h, n, nil // what follows the addresses (TLVs) is skipped
}
