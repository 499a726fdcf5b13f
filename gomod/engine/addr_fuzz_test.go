package engine

import (
	"errors"
	"net/netip"
	"testing"
)

// FuzzParseAddr: ParseAddr never panics; what it accepts is exactly what
// netip accepts with a port in range, and prints back to itself; what it
// refuses is an *OptionError naming the bad argument. Seeds: the f.Add
// calls and testdata/fuzz/FuzzParseAddr.
func FuzzParseAddr(f *testing.F) {
	for _, s := range []struct {
		host string
		port int
	}{
		{"127.0.0.1", 80}, {"::1", 0}, {"::ffff:10.0.0.1", 65535}, {"fe80::1%eth0", 443},
		{"0.0.0.0", 1}, {"localhost", 80}, {"", 80}, {"1.2.3.4", -1}, {"1.2.3.4", 65536},
		{"1.2.3", 1}, {"01.2.3.4", 1}, {"[::1]", 1}, {"::1%", 1}, {"1.2.3.4%eth0", 1},
	} {
		f.Add(s.host, s.port)
	}
	f.Fuzz(func(t *testing.T, host string, port int) {
		a, err := ParseAddr(host, port)
		ip, ipErr := netip.ParseAddr(host)
		if err != nil {
			var oe *OptionError
			if !errors.As(err, &oe) {
				t.Fatalf("ParseAddr(%q, %d): %T %v, want an *OptionError", host, port, err, err)
			}
			switch {
			case ipErr != nil && oe.Name != "host":
				t.Fatalf("ParseAddr(%q, %d): blamed %q, the host is bad", host, port, oe.Name)
			case ipErr == nil && (oe.Name != "port" || (port >= 0 && port <= 65535)):
				t.Fatalf("ParseAddr(%q, %d): refused a good address: %v", host, port, err)
			}
			return
		}
		if ipErr != nil || port < 0 || port > 65535 {
			t.Fatalf("ParseAddr(%q, %d) = %v, accepted a bad address", host, port, a)
		}
		if a.Addr() != ip || int(a.Port()) != port {
			t.Fatalf("ParseAddr(%q, %d) = %v, want %v port %d", host, port, a, ip, port)
		}
		back, err := netip.ParseAddrPort(a.String())
		if err != nil || back != a {
			t.Fatalf("%v prints as %q, which parses back as %v, %v", a, a.String(), back, err)
		}
	})
}
