package engine_test

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// The client a load balancer speaks for, in every header below.
var proxyClient = netip.MustParseAddrPort("203.0.113.7:51000")

func proxyV1Line(src, dst netip.AddrPort) []byte {
	proto := "TCP4"
	if src.Addr().Is6() {
		proto = "TCP6"
	}
	return fmt.Appendf(nil, "PROXY %s %s %s %d %d\r\n", proto, src.Addr(), dst.Addr(), src.Port(), dst.Port())
}

// proxyV2Header is a binary header: cmd 1 (PROXY) with TCP4 addresses, or
// 0 (LOCAL) with none.
func proxyV2Header(cmd byte, src, dst netip.AddrPort) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	if cmd == 0 {
		return append(b, 0x20, 0x00, 0, 0)
	}
	b = append(b, 0x21, 0x11, 0, 12)
	s, d := src.Addr().As4(), dst.Addr().As4()
	b = append(append(b, s[:]...), d[:]...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

func serveProxy(t *testing.T, r *recorder, backend string, mode engine.ProxyMode, allow []netip.Prefix,
	opts ...engine.Option) (*engine.Manager, *engine.Listener) {
	t.Helper()
	m := newManager(t, r, backend, opts...)
	l := listenAndStart(t, m, engine.WithProxyProtocol(mode, allow))
	t.Cleanup(func() { closeManager(t, m) })
	return m, l
}

// TestProxyPeer: behind a PROXY listener the handler sees the client the
// header names as Peer, the balancer as Proxy; v1, v2 and auto; the
// header alone, cut in two, or with the first request in the same write.
func TestProxyPeer(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		m, l := serveProxy(t, r, backend, engine.ProxyAuto, nil)
		dst := l.Addr()
		for i, hdr := range [][]byte{proxyV1Line(proxyClient, dst), proxyV2Header(1, proxyClient, dst)} {
			for _, how := range []string{"whole", "cut", "with data"} {
				c := dial(t, l.Addr().String())
				switch how {
				case "whole":
					c.Write(hdr)
				case "cut":
					c.Write(hdr[:7])
					time.Sleep(20 * time.Millisecond)
					c.Write(hdr[7:])
				case "with data":
					c.Write(append(append([]byte{}, hdr...), "early "...))
				}
				if how == "with data" {
					got := make([]byte, 6)
					c.SetReadDeadline(time.Now().Add(waitBound))
					if _, err := c.Read(got); err != nil || string(got) != "early " {
						t.Fatalf("v%d %s: the bytes after the header came back as %q, %v", i+1, how, got, err)
					}
				}
				if err := roundTrip(c, []byte("request")); err != nil {
					t.Fatalf("v%d %s: %v", i+1, how, err)
				}
				srv := r.nextConn(t)
				if srv.Peer() != proxyClient {
					t.Errorf("v%d %s: Peer %v, want the header's %v", i+1, how, srv.Peer(), proxyClient)
				}
				if want := netip.MustParseAddrPort(c.LocalAddr().String()); srv.Proxy() != want {
					t.Errorf("v%d %s: Proxy %v, want the balancer's %v", i+1, how, srv.Proxy(), want)
				}
				c.Close()
				r.waitClosed(t, srv.ID())
			}
		}
		if s := m.Stats(); s.ProxyErrors != 0 || s.Accepted != 6 {
			t.Errorf("stats: %d PROXY errors, %d accepted; want 0 and 6", s.ProxyErrors, s.Accepted)
		}
		r.checkExactlyOnce(t)
	})
}

// TestProxyLocal: a LOCAL header (a balancer's health check) leaves the
// connection's own addresses.
func TestProxyLocal(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		_, l := serveProxy(t, r, backend, engine.ProxyV2, nil)
		c := dial(t, l.Addr().String())
		defer c.Close()
		c.Write(proxyV2Header(0, netip.AddrPort{}, netip.AddrPort{}))
		if err := roundTrip(c, []byte("health")); err != nil {
			t.Fatal(err)
		}
		srv := r.nextConn(t)
		if want := netip.MustParseAddrPort(c.LocalAddr().String()); srv.Peer() != want || srv.Proxy().IsValid() {
			t.Errorf("Peer %v Proxy %v; want %v and none", srv.Peer(), srv.Proxy(), want)
		}
	})
}

// TestProxyRejects: no header, a bad one, the wrong version, a source
// outside proxy_allow_from, a peer gone before its header ended, and a
// header that never comes: each connection is reset unseen (no
// EventAccept) and counted; the listener goes on serving.
func TestProxyRejects(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		m, l := serveProxy(t, r, backend, engine.ProxyV1, nil, engine.WithAcceptTimeout(500*time.Millisecond))
		other := newEchoRecorder()
		_, strict := serveProxy(t, other, backend, engine.ProxyV1, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
		dst := l.Addr()
		cases := []struct {
			name  string
			addr  string
			write []byte
			close bool
		}{
			{"no header", l.Addr().String(), []byte("GET / HTTP/1.1\r\n\r\n"), false},
			{"bad header", l.Addr().String(), []byte("PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n"), false},
			{"v2 on a v1 listener", l.Addr().String(), proxyV2Header(1, proxyClient, dst), false},
			{"source not allowed", strict.Addr().String(), proxyV1Line(proxyClient, dst), false},
			{"gone mid-header", l.Addr().String(), []byte("PROXY TCP4 203.0"), true},
			{"silent", l.Addr().String(), nil, false},
		}
		for _, tc := range cases {
			c, err := dialErr(tc.addr)
			if err != nil {
				// Reset as accepted (a source not allowed), before the
				// dialer saw its connect complete.
				if tc.name != "source not allowed" {
					t.Errorf("%s: dial: %v", tc.name, err)
				}
				continue
			}
			c.Write(tc.write)
			if tc.close {
				c.(*net.TCPConn).CloseWrite()
			}
			c.SetReadDeadline(time.Now().Add(waitBound))
			n, err := c.Read(make([]byte, 1))
			var ne net.Error
			if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("%s: read %d, %v; want the connection ended", tc.name, n, err)
			}
			c.Close()
		}
		good := dial(t, l.Addr().String())
		good.Write(proxyV1Line(proxyClient, dst))
		if err := roundTrip(good, []byte("still served")); err != nil {
			t.Fatal(err)
		}
		srv := r.nextConn(t)
		good.Close()
		r.waitClosed(t, srv.ID())
		eventually(t, "the PROXY errors counted", func() bool { return m.Stats().ProxyErrors == 5 })
		if s := m.Stats(); s.Accepted != 1 || s.TimedOut != 0 {
			t.Errorf("accepted %d, timed out %d; want only the good one, and the late header as a PROXY error",
				s.Accepted, s.TimedOut)
		}
		if got := other.closedCount(); got != 0 {
			t.Errorf("the strict listener announced %d connections", got)
		}
		r.checkExactlyOnce(t)
	})
}

// TestProxyThenTLS: the header comes before the TLS handshake (HAProxy's
// send-proxy in front of a TLS server).
func TestProxyThenTLS(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		r := newEchoRecorder()
		m := newManager(t, r, backend)
		l := listenAndStart(t, m, engine.WithProxyProtocol(engine.ProxyV2, nil),
			engine.WithTLS(p.server("pyiocp.test"), 0))
		t.Cleanup(func() { closeManager(t, m) })
		raw := dial(t, l.Addr().String())
		raw.Write(proxyV2Header(1, proxyClient, l.Addr()))
		c := tls.Client(raw, p.client("pyiocp.test", 0))
		defer c.Close()
		if err := roundTrip(c, []byte("over TLS, behind a balancer")); err != nil {
			t.Fatal(err)
		}
		srv := r.nextConn(t)
		if srv.Peer() != proxyClient || srv.TLS() == nil {
			t.Errorf("Peer %v, TLS %v; want %v over TLS", srv.Peer(), srv.TLS(), proxyClient)
		}
	})
}

// TestProxyOptions: bad modes and prefixes are option errors.
func TestProxyOptions(t *testing.T) {
	m := newManager(t, echoHandler{}, "auto")
	t.Cleanup(func() { closeManager(t, m) })
	var oe *engine.OptionError
	if _, err := m.Listen(netip.MustParseAddrPort("127.0.0.1:0"), engine.WithProxyProtocol(9, nil)); !errors.As(err, &oe) {
		t.Errorf("mode 9: %v, want an OptionError", err)
	}
	if _, err := m.Listen(netip.MustParseAddrPort("127.0.0.1:0"),
		engine.WithProxyProtocol(engine.ProxyV1, []netip.Prefix{{}})); !errors.As(err, &oe) {
		t.Errorf("an invalid prefix: %v, want an OptionError", err)
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "fe80::1%eth0"} {
		if _, err := engine.ParsePrefixes(bad); !errors.As(err, &oe) {
			t.Errorf("ParsePrefixes(%q): %v, want an OptionError", bad, err)
		}
	}
	got, err := engine.ParsePrefixes(" 10.1.2.3/8, ::1 ,192.0.2.9")
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("192.0.2.9/32")}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("ParsePrefixes: %v, %v; want %v", got, err, want)
	}
	for _, s := range []string{"off", "v1", "v2", "auto"} {
		if _, err := engine.ParseProxyMode(s); err != nil {
			t.Errorf("ParseProxyMode(%q): %v", s, err)
		}
	}
	if _, err := engine.ParseProxyMode("v3"); !errors.As(err, &oe) {
		t.Errorf("ParseProxyMode(v3): %v, want an OptionError", err)
	}
}

// TestProxyFirstData: with first data, the header comes with the accept
// (on Windows, in AcceptEx's buffer), the request after it in the same
// bytes; both are taken apart as from a receive.
func TestProxyFirstData(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newEchoRecorder()
		m := newManager(t, r, backend)
		l := listenAndStart(t, m, engine.WithFirstData(true), engine.WithProxyProtocol(engine.ProxyV1, nil))
		t.Cleanup(func() { closeManager(t, m) })
		c := dial(t, l.Addr().String())
		defer c.Close()
		msg := []byte("with the accept")
		c.Write(append(proxyV1Line(proxyClient, l.Addr()), msg...))
		got := make([]byte, len(msg))
		c.SetReadDeadline(time.Now().Add(waitBound))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != string(msg) {
			t.Fatalf("echo %q, %v", got, err)
		}
		if srv := r.nextConn(t); srv.Peer() != proxyClient {
			t.Errorf("Peer %v, want %v", srv.Peer(), proxyClient)
		}
	})
}
