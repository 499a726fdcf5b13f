package engine

import (
	"net/netip"
	"slices"
	"testing"
)

// TestEyeballsOrder: RFC 8305's order, the families alternating from the
// resolver's first one's, each family's addresses in the resolver's order.
func TestEyeballsOrder(t *testing.T) {
	p := netip.MustParseAddr
	for _, tc := range []struct{ in, want []string }{
		{[]string{"::1", "::2", "10.0.0.1", "10.0.0.2", "::3"}, []string{"::1", "10.0.0.1", "::2", "10.0.0.2", "::3"}},
		{[]string{"10.0.0.1", "::1", "10.0.0.2", "::ffff:10.0.0.3"}, []string{"10.0.0.1", "::1", "10.0.0.2", "10.0.0.3"}},
		{[]string{"::1"}, []string{"::1"}},
	} {
		var in []netip.Addr
		for _, s := range tc.in {
			in = append(in, p(s))
		}
		var got []string
		for _, a := range eyeballsOrder(in, 80) {
			if a.Port() != 80 {
				t.Errorf("port %d", a.Port())
			}
			got = append(got, a.Addr().String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("eyeballsOrder(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
