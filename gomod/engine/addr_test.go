package engine

import (
	"errors"
	"testing"
)

func TestParseAddr(t *testing.T) {
	for _, ok := range []struct {
		host string
		port int
		want string
	}{{"127.0.0.1", 80, "127.0.0.1:80"}, {"::1", 0, "[::1]:0"}, {"::ffff:10.0.0.1", 65535, "[::ffff:10.0.0.1]:65535"}} {
		a, err := ParseAddr(ok.host, ok.port)
		if err != nil || a.String() != ok.want {
			t.Errorf("ParseAddr(%q, %d) = %v, %v", ok.host, ok.port, a, err)
		}
	}
	for _, bad := range []struct {
		host string
		port int
	}{{"localhost", 80}, {"", 80}, {"1.2.3.4", -1}, {"1.2.3.4", 65536}, {"1.2.3", 1}} {
		var oe *OptionError
		if _, err := ParseAddr(bad.host, bad.port); !errors.As(err, &oe) {
			t.Errorf("ParseAddr(%q, %d): %v, want an OptionError", bad.host, bad.port, err)
		}
	}
}
