package poller

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FuzzFromRaw: fromRaw decodes any bytes the kernel could leave in the
// accept address without panicking or reading past it: AF_INET and
// AF_INET6 to the address and port the bytes spell (decoded here
// independently, a link-local one with the zone of its scope index), anything else to the
// zero address; and what it decodes converts back (toSockaddr) to the same
// address, port and scope. Seeds: the
// f.Add calls and testdata/fuzz/FuzzFromRaw.
func FuzzFromRaw(f *testing.F) {
	v4 := make([]byte, 16)
	binary.NativeEndian.PutUint16(v4, unix.AF_INET)
	binary.BigEndian.PutUint16(v4[2:], 8080)
	copy(v4[4:], []byte{127, 0, 0, 1})
	f.Add(v4)
	v6 := make([]byte, 28)
	binary.NativeEndian.PutUint16(v6, unix.AF_INET6)
	binary.BigEndian.PutUint16(v6[2:], 65535)
	v6[23] = 1
	f.Add(v6)
	f.Add([]byte{})
	f.Add([]byte{unix.AF_UNIX, 0, '/', 't', 'm', 'p'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var rsa unix.RawSockaddrAny
		raw := unsafe.Slice((*byte)(unsafe.Pointer(&rsa)), unsafe.Sizeof(rsa))
		copy(raw, data)
		got := fromRaw(&rsa)
		var want netip.AddrPort
		port := binary.BigEndian.Uint16(raw[2:4])
		switch binary.NativeEndian.Uint16(raw[0:2]) {
		case unix.AF_INET:
			want = netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[4:8])), port)
		case unix.AF_INET6:
			ip := netip.AddrFrom16([16]byte(raw[8:24]))
			linkScope := ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast()
			if scope := binary.NativeEndian.Uint32(raw[24:28]); scope != 0 && linkScope {
				ip = ip.WithZone(zoneName(scope))
			}
			want = netip.AddrPortFrom(ip, port)
		}
		if got != want {
			t.Fatalf("fromRaw(% x) = %v, want %v", raw[:28], got, want)
		}
		if !got.IsValid() {
			return
		}
		switch sa := toSockaddr(got).(type) {
		case *unix.SockaddrInet4:
			if sa.Port != int(port) || netip.AddrFrom4(sa.Addr) != got.Addr().Unmap() {
				t.Fatalf("%v converts back to %v:%d", got, sa.Addr, sa.Port)
			}
		case *unix.SockaddrInet6:
			if sa.Port != int(port) || netip.AddrFrom16(sa.Addr) != got.Addr().WithZone("") {
				t.Fatalf("%v converts back to %v:%d", got, sa.Addr, sa.Port)
			}
			if z := got.Addr().Zone(); z != "" && sa.ZoneId != binary.NativeEndian.Uint32(raw[24:28]) {
				t.Fatalf("%v converts back to scope %d", got, sa.ZoneId)
			}
		default:
			t.Fatalf("%v converts back to %T", got, sa)
		}
	})
}
