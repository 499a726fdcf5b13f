package poller

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// An IPv6 address of limited scope (link-local: fe80::/10) is only
// meaningful with the interface it belongs to. The kernel names that by
// index (sin6_scope_id); netip and Python by a zone ("fe80::1%eth0"). The
// conversions keep it both ways, so that a reply to a link-local sender
// goes out on the interface the datagram came in on.

var zoneNames sync.Map // interface index (uint32) -> zone name

// zoneName is the zone of interface index i: its name, or the index as a
// number when the interface has none we can find. Names are looked up
// once per index (the lookup is a system call; datagrams come often).
func zoneName(i uint32) string {
	if v, ok := zoneNames.Load(i); ok {
		return v.(string)
	}
	name := strconv.FormatUint(uint64(i), 10)
	if ifi, err := net.InterfaceByIndex(int(i)); err == nil && ifi.Name != "" {
		name = ifi.Name
	}
	zoneNames.Store(i, name)
	return name
}

// withScope is ip with the zone of scope index i, when ip is of link or
// interface scope and i is not 0.
func withScope(ip netip.Addr, i uint32) netip.Addr {
	if i == 0 || !scoped(ip) {
		return ip
	}
	return ip.WithZone(zoneName(i))
}

// zoneIndex is the interface index of ip's zone (0: none): the zone is an
// interface's name, or its index written as a number.
func zoneIndex(ip netip.Addr) uint32 {
	z := ip.Zone()
	if z == "" {
		return 0
	}
	if n, err := strconv.ParseUint(z, 10, 32); err == nil {
		return uint32(n)
	}
	if ifi, err := net.InterfaceByName(z); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// scoped: ip means something only on one link or interface.
func scoped(ip netip.Addr) bool {
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast()
}
