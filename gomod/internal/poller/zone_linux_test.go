package poller

import (
	"net"
	"net/netip"
	"testing"
	"unsafe"
)

// TestLinkLocalZone: a link-local sender's scope index becomes its
// interface's name as the zone, and goes back to the same index, so a
// reply leaves by the interface the datagram came in on; an index with
// no interface is kept as a number; addresses of global scope take no zone.
func TestLinkLocalZone(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	ll := netip.MustParseAddr("fe80::1")
	rsa := rawSockaddrAny{}
	p := (*rawSockaddrInet6)(unsafe.Pointer(&rsa))
	*p = rawSockaddrInet6{Family: afInet6, Port: 0x3412, Addr: ll.As16(), Scope_id: uint32(lo.Index)}
	got := fromRaw(&rsa)
	if got.String() != "[fe80::1%lo]:4660" {
		t.Fatalf("fromRaw: %v", got)
	}
	if i := zoneIndex(got.Addr()); i != uint32(lo.Index) {
		t.Fatalf("zoneIndex(%v) = %d, want %d", got.Addr(), i, lo.Index)
	}
	var back rawSockaddrAny
	putSockaddr(&back, got, true)
	if s := (*rawSockaddrInet6)(unsafe.Pointer(&back)).Scope_id; s != uint32(lo.Index) {
		t.Fatalf("putSockaddr: scope %d, want %d", s, lo.Index)
	}
	if sa := toSockaddr(got).(*sockaddrInet6); sa.ZoneId != uint32(lo.Index) {
		t.Fatalf("toSockaddr: zone %d, want %d", sa.ZoneId, lo.Index)
	}

	if a := withScope(ll, 1<<30); a.Zone() != "1073741824" || zoneIndex(a) != 1<<30 {
		t.Fatalf("an index with no interface: %v (%d)", a, zoneIndex(a))
	}
	for _, s := range []string{"::1", "2001:db8::1", "127.0.0.1", "::ffff:10.0.0.1"} {
		if a := withScope(netip.MustParseAddr(s), uint32(lo.Index)); a.Zone() != "" {
			t.Fatalf("%s took zone %q", s, a.Zone())
		}
	}
}
