package engine

import (
	"errors"
	"net/netip"
	"testing"
)

type hostPort struct {
	host string
	port int
}

// goodAddrs and badAddrs are TestParseAddr's cases and FuzzParseAddr's
// first seeds.
var (
	goodAddrs = []struct {
		hostPort
		want string
	}{
		{hostPort{"127.0.0.1", 80}, "127.0.0.1:80"},
		{hostPort{"::1", 0}, "[::1]:0"},
		{hostPort{"::ffff:10.0.0.1", 65535}, "[::ffff:10.0.0.1]:65535"},
	}
	badAddrs = []hostPort{{"localhost", 80}, {"", 80}, {"1.2.3.4", -1}, {"1.2.3.4", 65536}, {"1.2.3", 1}}
)

func TestParseAddr(t *testing.T) {
	for _, ok := range goodAddrs {
		a, err := ParseAddr(ok.host, ok.port)
		if err != nil || a.String() != ok.want {
			t.Errorf("ParseAddr(%q, %d) = %v, %v", ok.host, ok.port, a, err)
		}
	}
	for _, bad := range badAddrs {
		var oe *OptionError
		if _, err := ParseAddr(bad.host, bad.port); !errors.As(err, &oe) {
			t.Errorf("ParseAddr(%q, %d): %v, want an OptionError", bad.host, bad.port, err)
		}
	}
}

// FuzzParseAddr: ParseAddr never panics; what it accepts is exactly what
// netip accepts with a port in range, and prints back to itself; what it
// refuses is an *OptionError naming the bad argument. Seeds: TestParseAddr's
// cases, the f.Add calls and testdata/fuzz/FuzzParseAddr.
func FuzzParseAddr(f *testing.F) {
	for _, s := range goodAddrs {
		f.Add(s.host, s.port)
	}
	for _, s := range badAddrs {
		f.Add(s.host, s.port)
	}
	for _, s := range []hostPort{
		{"fe80::1%eth0", 443}, {"0.0.0.0", 1}, {"01.2.3.4", 1}, {"[::1]", 1}, {"::1%", 1}, {"1.2.3.4%eth0", 1},
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
