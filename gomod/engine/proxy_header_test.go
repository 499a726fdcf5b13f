package engine

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// proxyV2 builds a version 2 header: command (0 LOCAL, 1 PROXY), family
// byte, the address block and any TLV bytes after it.
func proxyV2(cmd, fam byte, body []byte) []byte {
	b := append([]byte{}, proxyV2Sig...)
	b = append(b, 0x20|cmd, fam)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

func v2Body4(src, dst netip.AddrPort) []byte {
	s, d := src.Addr().As4(), dst.Addr().As4()
	b := append(append([]byte{}, s[:]...), d[:]...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

func v2Body6(src, dst netip.AddrPort) []byte {
	s, d := src.Addr().As16(), dst.Addr().As16()
	b := append(append([]byte{}, s[:]...), d[:]...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

func TestProxyHeaderGood(t *testing.T) {
	src4, dst4 := netip.MustParseAddrPort("203.0.113.7:51000"), netip.MustParseAddrPort("192.0.2.1:443")
	src6, dst6 := netip.MustParseAddrPort("[2001:db8::7]:51000"), netip.MustParseAddrPort("[2001:db8::1]:443")
	tlvs := []byte{0x04, 0x00, 0x03, 'a', 'b', 'c'} // a NOOP TLV: skipped
	for _, tc := range []struct {
		name     string
		in       []byte
		mode     ProxyMode
		src, dst netip.AddrPort
		local    bool
	}{
		{"v1 tcp4", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n"), ProxyV1, src4, dst4, false},
		{"v1 tcp6", []byte("PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n"), ProxyV1, src6, dst6, false},
		{"v1 unknown", []byte("PROXY UNKNOWN ff:: ff:: 1 2\r\n"), ProxyV1, netip.AddrPort{}, netip.AddrPort{}, true},
		{"v1 bare unknown", []byte("PROXY UNKNOWN\r\n"), ProxyAuto, netip.AddrPort{}, netip.AddrPort{}, true},
		{"v1 auto", []byte("PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\n"), ProxyAuto, src4, dst4, false},
		{"v2 tcp4", proxyV2(1, 0x11, v2Body4(src4, dst4)), ProxyV2, src4, dst4, false},
		{"v2 tcp6 tlvs", proxyV2(1, 0x21, append(v2Body6(src6, dst6), tlvs...)), ProxyV2, src6, dst6, false},
		{"v2 auto", proxyV2(1, 0x11, v2Body4(src4, dst4)), ProxyAuto, src4, dst4, false},
		{"v2 local", proxyV2(0, 0x00, nil), ProxyV2, netip.AddrPort{}, netip.AddrPort{}, true},
		{"v2 unix", proxyV2(1, 0x31, make([]byte, 216)), ProxyV2, netip.AddrPort{}, netip.AddrPort{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append(append([]byte{}, tc.in...), "GET / HTTP/1.1\r\n"...) // what follows is not read
			h, n, err := parseProxyHeader(in, tc.mode)
			if err != nil || n != len(tc.in) {
				t.Fatalf("parse: n=%d (want %d), err=%v", n, len(tc.in), err)
			}
			if h.src != tc.src || h.dst != tc.dst || h.local != tc.local {
				t.Fatalf("got %+v, want src %v dst %v local %v", h, tc.src, tc.dst, tc.local)
			}
			// Every shorter beginning asks for more bytes, and is no error.
			for i := range len(tc.in) {
				if _, n, err := parseProxyHeader(tc.in[:i], tc.mode); n != 0 || err != nil {
					t.Fatalf("first %d bytes: n=%d err=%v, want more needed", i, n, err)
				}
			}
		})
	}
}

func TestProxyHeaderBad(t *testing.T) {
	src4 := netip.MustParseAddrPort("203.0.113.7:51000")
	for _, tc := range []struct {
		name string
		in   []byte
		mode ProxyMode
	}{
		{"plain request", []byte("GET / HTTP/1.1\r\n"), ProxyAuto},
		{"v2 when v1 wanted", proxyV2(1, 0x11, v2Body4(src4, src4)), ProxyV1},
		{"v1 when v2 wanted", []byte("PROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\n"), ProxyV2},
		{"v1 no CRLF", bytes.Repeat([]byte("PROXY TCP4 "), 10), ProxyV1},
		{"v1 bad protocol", []byte("PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n"), ProxyV1},
		{"v1 v6 in tcp4", []byte("PROXY TCP4 ::1 ::1 1 2\r\n"), ProxyV1},
		{"v1 v4 in tcp6", []byte("PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n"), ProxyV1},
		{"v1 port too big", []byte("PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n"), ProxyV1},
		{"v1 leading zero", []byte("PROXY TCP4 1.2.3.4 1.2.3.4 080 2\r\n"), ProxyV1},
		{"v1 missing port", []byte("PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n"), ProxyV1},
		{"v1 double space", []byte("PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n"), ProxyV1},
		{"v1 zone", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"), ProxyV1},
		{"v2 version 1", append(append([]byte{}, proxyV2Sig...), 0x11, 0x11, 0, 0), ProxyV2},
		{"v2 command 2", append(append([]byte{}, proxyV2Sig...), 0x22, 0x11, 0, 0), ProxyV2},
		{"v2 tcp4 short", proxyV2(1, 0x11, make([]byte, 11)), ProxyV2},
		{"v2 tcp6 short", proxyV2(1, 0x21, make([]byte, 35)), ProxyV2},
		{"v2 bad signature", append([]byte("\r\n\r\n\x00\r\nQUIX\n"), 0x21, 0x11, 0, 0), ProxyV2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, n, err := parseProxyHeader(tc.in, tc.mode); err == nil {
				t.Fatalf("parsed (n=%d), want an error", n)
			}
		})
	}
}

// FuzzProxyHeader: any input is a header, a beginning that needs more, or
// an error; never a panic, a header longer than the input, or a parse
// that a longer input changes.
func FuzzProxyHeader(f *testing.F) {
	src := netip.MustParseAddrPort("203.0.113.7:51000")
	f.Add([]byte("PROXY TCP4 203.0.113.7 192.0.2.1 51000 443\r\nGET /"), uint8(ProxyAuto))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 51000 443\r\n"), uint8(ProxyV1))
	f.Add([]byte("PROXY UNKNOWN\r\n"), uint8(ProxyV1))
	f.Add(proxyV2(1, 0x11, v2Body4(src, src)), uint8(ProxyV2))
	f.Add(proxyV2(1, 0x21, v2Body6(netip.MustParseAddrPort("[::1]:1"), src)), uint8(ProxyAuto))
	f.Add(proxyV2(0, 0x00, []byte{1, 2, 3}), uint8(ProxyV2))
	f.Fuzz(func(t *testing.T, in []byte, mode uint8) {
		m := ProxyMode(mode%3 + 1)
		h, n, err := parseProxyHeader(in, m)
		if err != nil {
			if n != 0 {
				t.Fatalf("error with n=%d", n)
			}
			return
		}
		if n > len(in) || n < 0 {
			t.Fatalf("n=%d for %d bytes", n, len(in))
		}
		if n == 0 {
			return
		}
		if !h.local && (!h.src.IsValid() || !h.dst.IsValid()) {
			t.Fatalf("addresses missing in %+v", h)
		}
		h2, n2, err2 := parseProxyHeader(append(append([]byte{}, in...), 'x'), m)
		if err2 != nil || n2 != n || h2 != h {
			t.Fatalf("a byte more changed the parse: %+v %d %v -> %+v %d %v", h, n, err, h2, n2, err2)
		}
	})
}
