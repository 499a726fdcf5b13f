package engine_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// serveTLS starts a manager whose listener speaks TLS with cfg.
func serveTLS(t *testing.T, h engine.Handler, backend string, cfg *tls.Config, timeout time.Duration,
	opts ...engine.Option) (*engine.Manager, *engine.Listener) {
	t.Helper()
	m := newManager(t, h, backend, opts...)
	l := listenAndStart(t, m, engine.WithTLS(cfg, timeout))
	t.Cleanup(func() { closeManager(t, m) })
	return m, l
}

func dialTLS(t *testing.T, l *engine.Listener, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c := tls.Client(dial(t, l.Addr().String()), cfg)
	if err := c.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return c
}

// TestTLSEcho: a stock crypto/tls client, TLS 1.2 and 1.3, gets back
// everything it sent, in order, through the engine's records; the server
// sees plaintext and the negotiated state, announced only after the
// handshake; its Close sends close_notify (the client reads a clean EOF).
func TestTLSEcho(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			t.Run(tls.VersionName(v), func(t *testing.T) {
				p := newTestPKI(t)
				r := newEchoRecorder()
				m, l := serveTLS(t, r, backend, p.server("pyiocp.test"), 0)
				cli := dialTLS(t, l, p.client("pyiocp.test", v))
				srv := r.nextConn(t)
				st := srv.TLS()
				if st == nil || st.Version != v || st.NegotiatedProtocol != "pyiocp" || !st.HandshakeComplete {
					t.Fatalf("server's TLS state %+v", st)
				}
				if n := m.Stats().TLSConnections; n != 1 {
					t.Errorf("tls_connections %d, want 1", n)
				}
				payload := make([]byte, 300<<10) // records of every size, several receives
				rand.Read(payload)
				go cli.Write(payload)
				got := make([]byte, len(payload))
				if _, err := io.ReadFull(cli, got); err != nil {
					t.Fatalf("echo: %v", err)
				}
				if !bytes.Equal(got, payload) {
					t.Fatal("the echo differs from what was sent")
				}
				if !bytes.Equal(r.received(srv.ID()), payload) {
					t.Fatal("the server's plaintext differs from what was sent")
				}
				srv.Close()
				if n, err := cli.Read(got); n != 0 || err != io.EOF {
					t.Fatalf("after the server's close: %d, %v; want close_notify (io.EOF)", n, err)
				}
				wantNil(t, r.waitClosed(t, srv.ID()))
				if s := m.Stats(); s.TLSConnections != 0 || s.TLSHandshakeErrors != 0 || s.Accepted != 1 {
					t.Errorf("stats after close: %+v", s)
				}
			})
		}
	})
}

// TestTLSRequestThenShutdown: a client that sends its request and shuts
// down its side right after the handshake (its Finished, the request and
// the FIN may all come in one read) gets its reply.
func TestTLSRequestThenShutdown(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		r := newEchoRecorder()
		_, l := serveTLS(t, r, backend, p.server("pyiocp.test"), 0)
		for i := 0; i < 20; i++ {
			cli := dialTLS(t, l, p.client("pyiocp.test", tls.VersionTLS13))
			cli.Write([]byte("request"))
			cli.CloseWrite()
			got, err := io.ReadAll(cli)
			if err != nil || string(got) != "request" {
				t.Fatalf("round %d: got %q, %v", i, got, err)
			}
			cli.Close()
		}
	})
}

// TestTLSHandshakeFailures: peers that send garbage, stall, or leave
// mid-handshake are never announced, are counted, and leave nothing
// behind (checkLeaks: no descriptor, no goroutine).
func TestTLSHandshakeFailures(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		r := newRecorder()
		m, l := serveTLS(t, r, backend, p.server("pyiocp.test"), 300*time.Millisecond)
		addr := l.Addr().String()

		garbage := dial(t, addr)
		garbage.Write(bytes.Repeat([]byte("GET / HTTP/1.1\r\n"), 10))
		wantClosedByServer(t, garbage)

		stall := dial(t, addr) // sends nothing: the handshake times out
		wantClosedByServer(t, stall)

		half := dial(t, addr) // a handshake record cut short, then gone
		half.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03})
		half.(*net.TCPConn).CloseWrite()
		wantClosedByServer(t, half)

		wrongName := tls.Client(dial(t, addr), p.client("other.test", tls.VersionTLS13))
		if err := wrongName.Handshake(); err == nil {
			t.Error("a client that wants another name finished its handshake")
		}

		// Counted as the connection is finalized, a moment before it stops
		// counting as open: both are waited for.
		eventually(t, "four failed handshakes, closed", func() bool {
			s := m.Stats()
			return s.TLSHandshakeErrors == 4 && s.Connections == 0
		})
		if s := m.Stats(); s.Accepted != 0 || s.Connections != 0 || s.TLSConnections != 0 {
			t.Errorf("after failed handshakes: %+v", s)
		}
		if n := r.closedCount(); n != 0 {
			t.Errorf("%d connections announced and closed; want none", n)
		}
	})
}

// wantClosedByServer reads c until the server ends it.
func wantClosedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitBound))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server never closed a failed handshake's connection")
	}
}

// TestTLSReload: after ReloadTLS new handshakes get the new certificate;
// a connection made before keeps working on the old one.
func TestTLSReload(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		r := newEchoRecorder()
		_, l := serveTLS(t, r, backend, p.server("old.test"), 0)
		before := dialTLS(t, l, p.client("old.test", tls.VersionTLS13))
		if err := l.ReloadTLS(p.server("new.test")); err != nil {
			t.Fatal(err)
		}
		after := dialTLS(t, l, p.client("new.test", tls.VersionTLS13))
		for _, c := range []*tls.Conn{before, after} {
			c.Write([]byte("ping"))
			b := make([]byte, 4)
			if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
				t.Fatalf("echo: %q, %v", b, err)
			}
		}
		if err := tls.Client(dial(t, l.Addr().String()), p.client("old.test", tls.VersionTLS13)).Handshake(); err == nil {
			t.Error("a new handshake was given the old certificate")
		}
		if err := l.ReloadTLS(&tls.Config{}); err == nil {
			t.Error("ReloadTLS took a config without a certificate")
		}
	})
}

// TestTLSManyHandshakes: many clients at once, every one echoed and
// closed, nothing left (descriptors, goroutines, the pool's).
func TestTLSManyHandshakes(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		r := newEchoRecorder()
		m, l := serveTLS(t, r, backend, p.server("pyiocp.test"), 0, engine.WithWorkers(2))
		const n = 100
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			go func() {
				c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitBound}, "tcp", l.Addr().String(),
					p.client("pyiocp.test", tls.VersionTLS13))
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * waitBound))
				c.Write([]byte("hello"))
				b := make([]byte, 5)
				_, err = io.ReadFull(c, b)
				errs <- err
			}()
		}
		for i := 0; i < n; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, "every connection closed", func() bool { return m.Stats().Connections == 0 })
		if s := m.Stats(); s.Accepted != n || s.TLSHandshakeErrors != 0 {
			t.Errorf("stats: %+v", s)
		}
	})
}

// tlsEchoServer is Go's crypto/tls in front of an echo, for the engine's
// client: it reports each connection's end of stream (close_notify) on eof.
// Made after the manager, its cleanup runs before the leak check: it
// closes its sockets and waits for its goroutines.
func tlsEchoServer(t *testing.T, cfg *tls.Config) (addr string, eof <-chan []byte) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	ends := make(chan []byte, 16)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				var got []byte
				buf := make([]byte, 32<<10)
				for {
					n, err := c.Read(buf)
					got = append(got, buf[:n]...)
					if n > 0 {
						c.Write(buf[:n])
					}
					if err != nil {
						if err == io.EOF {
							ends <- got
						}
						return
					}
				}
			})
		}
	})
	return ln.Addr().String(), ends
}

// TestTLSClient: ConnectTLS to Go's crypto/tls server, checking its
// certificate: what is sent before the handshake ends goes first, in
// order; EventConnect comes after the handshake; Close sends close_notify.
func TestTLSClient(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		r := newEchoRecorder()
		r.onRecv = nil
		m := startManager(t, r, backend)
		addr, ends := tlsEchoServer(t, p.server("pyiocp.test"))
		host, port := splitAddr(t, addr)
		c, err := m.ConnectTLS(host, port, waitBound, p.client("pyiocp.test", tls.VersionTLS13), 0)
		if err != nil {
			t.Fatal(err)
		}
		early := pattern(100 << 10)
		if err := c.Send(early); err != nil {
			t.Fatal(err)
		}
		if got := r.nextConn(t); got != c {
			t.Fatal("another connection announced")
		}
		if st := c.TLS(); st == nil || st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "pyiocp" {
			t.Fatalf("client's TLS state %+v", st)
		}
		c.Send([]byte("after"))
		want := append(append([]byte(nil), early...), "after"...)
		eventually(t, "the echo", func() bool { return r.receivedLen(c.ID()) >= len(want) })
		if !bytes.Equal(r.received(c.ID()), want) {
			t.Fatal("echo differs from what was sent")
		}
		c.Close()
		select {
		case got := <-ends:
			if !bytes.Equal(got, want) {
				t.Fatalf("the server got %d bytes, want %d", len(got), len(want))
			}
		case <-time.After(waitBound):
			t.Fatal("the server never read close_notify")
		}
		wantNil(t, r.waitClosed(t, c.ID()))
		r.mu.Lock()
		order := r.order[c.ID()]
		r.mu.Unlock()
		if len(order) == 0 || order[0] != engine.EventAccept {
			t.Errorf("events %v: want OnOpen first (no OnSend for the handshake's bytes)", order)
		}
	})
}

// TestTLSClientRefusesAWrongName: a certificate for another name ends the
// connection with a TLSError, never EventConnect; a close asked before
// the handshake ended waits for it, the bytes sent before written first.
func TestTLSClientRefusesAWrongName(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		r := newRecorder()
		m := startManager(t, r, backend)
		addr, ends := tlsEchoServer(t, p.server("pyiocp.test"))
		host, port := splitAddr(t, addr)
		c, err := m.ConnectTLS(host, port, waitBound, p.client("other.test", tls.VersionTLS13), 0)
		if err != nil {
			t.Fatal(err)
		}
		var te *engine.TLSError
		if err := r.waitClosed(t, c.ID()); !errors.As(err, &te) {
			t.Fatalf("closed with %s, want a *TLSError", describe(err))
		}
		if opened, _ := r.counts(c.ID()); opened != 0 {
			t.Error("a refused server was announced")
		}

		c, err = m.ConnectTLS(host, port, waitBound, p.client("pyiocp.test", tls.VersionTLS12), 0)
		if err != nil {
			t.Fatal(err)
		}
		c.Send([]byte("bye"))
		c.Close()
		select {
		case got := <-ends:
			if string(got) != "bye" {
				t.Fatalf("the server got %q, want the bytes sent before the close", got)
			}
		case <-time.After(waitBound):
			t.Fatal("the server never read close_notify")
		}
		wantNil(t, r.waitClosed(t, c.ID()))
	})
}

// TestTLSEngineToEngine: the engine's client against its own server.
func TestTLSEngineToEngine(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		_, l := serveTLS(t, newEchoRecorder(), backend, p.server("pyiocp.test"), 0)
		r := newRecorder()
		m := startManager(t, r, backend)
		c, err := m.ConnectTLS("127.0.0.1", l.Addr().Port(), waitBound, p.client("pyiocp.test", tls.VersionTLS13), 0)
		if err != nil {
			t.Fatal(err)
		}
		payload := pattern(1 << 20)
		c.Send(payload)
		eventually(t, "the echo", func() bool { return r.receivedLen(c.ID()) >= len(payload) })
		if !bytes.Equal(r.received(c.ID()), payload) {
			t.Fatal("echo differs")
		}
		if _, err := m.ConnectTLS("127.0.0.1", l.Addr().Port(), 0, nil, 0); err == nil {
			t.Error("ConnectTLS took a nil config")
		}
	})
}

// TestTLSEngineResumes: with a ClientSessionCache in the config, a second
// ConnectTLS resumes the first one's session (TLS 1.2 and 1.3), and both
// ends report it.
func TestTLSEngineResumes(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		server := newEchoRecorder()
		_, l := serveTLS(t, server, backend, p.server("pyiocp.test"), 0)
		r := newRecorder()
		m := startManager(t, r, backend)
		for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			cfg := p.client("pyiocp.test", version)
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			var resumed []bool
			for range 2 {
				c, err := m.ConnectTLS("127.0.0.1", l.Addr().Port(), waitBound, cfg, 0)
				if err != nil {
					t.Fatal(err)
				}
				c.Send([]byte("hi")) // its echo comes after the server's tickets
				eventually(t, "the echo", func() bool { return r.receivedLen(c.ID()) == 2 })
				srv := server.nextConn(t)
				resumed = append(resumed, c.TLS().DidResume, srv.TLS().DidResume)
				c.Close()
				wantNil(t, r.waitClosed(t, c.ID()))
			}
			if fmt.Sprint(resumed) != "[false false true true]" {
				t.Errorf("%s: resumed (client, server) %v, want a full handshake, then both resumed",
					tls.VersionName(version), resumed)
			}
		}
	})
}

func splitAddr(t *testing.T, addr string) (string, uint16) {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Addr().String(), ap.Port()
}

// TestTLSStartTLS: a plaintext command, then TLS on the same connection,
// as the server (a stock client upgrades after the server's go-ahead) and
// as the client (against a stock server doing the same).
func TestTLSStartTLS(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		p := newTestPKI(t)
		r := newRecorder()
		r.onRecv = func(c *engine.Conn, data []byte) {
			if string(data) == "STARTTLS\n" && c.TLS() == nil {
				c.Send([]byte("GO\n"))
				if err := c.StartTLS(p.server("pyiocp.test"), true, 0); err != nil {
					t.Error(err)
				}
				return
			}
			c.Send(data)
		}
		_, cli, srv := serveOne(t, r, backend)
		cli.Write([]byte("STARTTLS\n"))
		b := make([]byte, 3)
		if _, err := io.ReadFull(cli, b); err != nil || string(b) != "GO\n" {
			t.Fatalf("go-ahead: %q, %v", b, err)
		}
		tc := tls.Client(cli, p.client("pyiocp.test", tls.VersionTLS13))
		tc.Write([]byte("secret"))
		b = make([]byte, 6)
		if _, err := io.ReadFull(tc, b); err != nil || string(b) != "secret" {
			t.Fatalf("over TLS: %q, %v", b, err)
		}
		if st := srv.TLS(); st == nil || st.Version != tls.VersionTLS13 {
			t.Fatalf("server's state %+v", st)
		}
		if err := srv.StartTLS(p.server("pyiocp.test"), true, 0); err == nil {
			t.Error("a second StartTLS was taken")
		}

		// The client side, against crypto/tls.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		served := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				served <- err
				return
			}
			defer c.Close()
			cmd := make([]byte, 9)
			if _, err := io.ReadFull(c, cmd); err != nil || string(cmd) != "STARTTLS\n" {
				served <- fmt.Errorf("command %q, %v", cmd, err)
				return
			}
			c.Write([]byte("GO\n"))
			s := tls.Server(c, p.server("pyiocp.test"))
			got := make([]byte, 6)
			if _, err := io.ReadFull(s, got); err != nil {
				served <- err
				return
			}
			s.Write(got)
			served <- nil
		}()
		r2 := newRecorder()
		r2.onRecv = func(c *engine.Conn, data []byte) {
			if string(data) == "GO\n" {
				if err := c.StartTLS(p.client("pyiocp.test", tls.VersionTLS13), false, 0); err != nil {
					t.Error(err)
				}
				c.Send([]byte("secret")) // written once the handshake is done
			}
		}
		m2 := startManager(t, r2, backend)
		host, port := splitAddr(t, ln.Addr().String())
		c, err := m2.ConnectHost(host, port, waitBound)
		if err != nil {
			t.Fatal(err)
		}
		c.Send([]byte("STARTTLS\n"))
		eventually(t, "the echo over TLS", func() bool { return r2.receivedLen(c.ID()) >= 9 })
		if got := string(r2.received(c.ID())); got != "GO\nsecret" {
			t.Fatalf("client got %q", got)
		}
		if err := <-served; err != nil {
			t.Fatal(err)
		}
	})
}
