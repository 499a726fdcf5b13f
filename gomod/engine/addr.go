package engine

import (
	"net/netip"
	"strconv"
)

// ParseAddr turns a numeric host ("127.0.0.1", "::1", "fe80::1%eth0") and
// a port into an address. Bindings resolve names first and pass the
// result here; a bad value is an *OptionError (Python: ValueError).
func ParseAddr(host string, port int) (netip.AddrPort, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, &OptionError{"host", strconv.Quote(host), "is not an IP address"}
	}
	if port < 0 || port > 65535 {
		return netip.AddrPort{}, &OptionError{"port", port, "must be 0-65535"}
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}
