package engine_test

import (
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// TestOnCloseExactlyOnce ends connections every way they can end and checks
// that OnClose comes exactly once for each, with the right error.
func TestOnCloseExactlyOnce(t *testing.T) {
	cases := []struct {
		name  string
		end   func(t *testing.T, m *engine.Manager, r *recorder, srv *engine.Conn, cli interface{ Close() error })
		check func(t *testing.T, err error)
	}{
		{"client close", func(t *testing.T, m *engine.Manager, r *recorder, srv *engine.Conn, cli interface{ Close() error }) {
			cli.Close()
		}, wantNil},
		{"conn close", func(t *testing.T, m *engine.Manager, r *recorder, srv *engine.Conn, cli interface{ Close() error }) {
			srv.Close()
			srv.Close()
		}, wantNil},
		{"conn abort", func(t *testing.T, m *engine.Manager, r *recorder, srv *engine.Conn, cli interface{ Close() error }) {
			srv.Abort()
			srv.Abort()
			srv.Close()
		}, wantNil},
		{"concurrent close and abort", func(t *testing.T, m *engine.Manager, r *recorder, srv *engine.Conn, cli interface{ Close() error }) {
			var wg sync.WaitGroup
			for i := 0; i < 8; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					if i%2 == 0 {
						srv.Close()
					} else {
						srv.Abort()
					}
				}(i)
			}
			wg.Wait()
		}, wantNil},
		{"manager shutdown", func(t *testing.T, m *engine.Manager, r *recorder, srv *engine.Conn, cli interface{ Close() error }) {
			m.Shutdown(time.Second)
		}, wantNil},
	}
	forBackends(t, func(t *testing.T, backend string) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := newRecorder()
				m, cli, srv := serveOne(t, r, backend)
				tc.end(t, m, r, srv, cli)
				tc.check(t, r.waitClosed(t, srv.ID()))
				if !srv.Closed() {
					t.Error("Closed() is false after OnClose")
				}
				if err := srv.Send([]byte("x")); !errors.Is(err, engine.ErrClosed) {
					t.Errorf("send after close: %v", err)
				}
				time.Sleep(20 * time.Millisecond) // a second OnClose would come now
				r.checkExactlyOnce(t)
			})
		}
		t.Run("client reset", func(t *testing.T) {
			r := newRecorder()
			_, cli, srv := serveOne(t, r, backend)
			resetClose(t, cli)
			err := r.waitClosed(t, srv.ID())
			if !errors.Is(err, errReset) && !(err == nil && resetsLost) {
				t.Errorf("OnClose error after a reset = %s, want ECONNRESET", describe(err))
			}
			r.checkExactlyOnce(t)
		})
		t.Run("many at once", func(t *testing.T) {
			r := newRecorder()
			m, addr := serve(t, r, backend, engine.WithWorkers(2))
			for i := 0; i < 100; i++ {
				c := dial(t, addr)
				srv := r.nextConn(t)
				switch i % 4 {
				case 0:
					c.Close()
				case 1:
					resetClose(t, c)
				case 2:
					srv.Close()
				}
			}
			closeManager(t, m)
			r.checkExactlyOnce(t)
		})
	})
}

func wantNil(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("OnClose error = %s, want nil", describe(err))
	}
}

func TestSendAfterCloseFails(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		_, _, srv := serveOne(t, r, backend)
		srv.Close()
		if err := srv.Send([]byte("late")); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("send right after Close: %v", err)
		}
		r.waitClosed(t, srv.ID())
		if err := srv.Send([]byte("later")); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("send after OnClose: %v", err)
		}
		if err := srv.ShutdownWrite(); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("ShutdownWrite after close: %v", err)
		}
		if err := srv.PauseReading(); !errors.Is(err, engine.ErrClosed) {
			t.Fatalf("PauseReading after close: %v", err)
		}
	})
}

// TestGracefulCloseFlushes: Close after a large Send delivers every byte,
// then end of stream.
func TestGracefulCloseFlushes(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		_, cli, srv := serveOne(t, r, backend)
		payload := pattern(3<<20 + 7)
		if err := srv.Send(payload); err != nil {
			t.Fatal(err)
		}
		srv.Close()
		got, err := io.ReadAll(cli)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(payload) {
			t.Fatalf("got %d bytes, want %d in order", len(got), len(payload))
		}
		wantNil(t, r.waitClosed(t, srv.ID()))
	})
}

// TestManagerCloseFlushesThenTimesOut: a manager close flushes what peers
// read, and resets (ErrCloseTimeout) a connection whose peer never reads.
func TestManagerCloseFlushesThenTimesOut(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		m := newManager(t, r, backend, engine.WithSendBufferLimit(64<<20))
		l := listenAndStart(t, m)
		reader := dial(t, l.Addr().String())
		a := r.nextConn(t)
		stuck := dial(t, l.Addr().String())
		b := r.nextConn(t)
		a.Send(pattern(1 << 20))
		b.Send(pattern(32 << 20)) // far more than the kernel buffers hold
		done := make(chan []byte)
		go func() { got, _ := io.ReadAll(reader); done <- got }()
		start := time.Now()
		m.Close(300 * time.Millisecond)
		if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
			t.Errorf("Close(300ms) took %v", d)
		}
		if got := <-done; string(got) != string(pattern(1<<20)) {
			t.Errorf("reader got %d bytes", len(got))
		}
		wantNil(t, r.closeErrOf(a.ID()))
		if err := r.closeErrOf(b.ID()); !errors.Is(err, engine.ErrCloseTimeout) {
			t.Errorf("stuck connection closed with %s", describe(err))
		}
		stuck.Close()
		r.checkExactlyOnce(t)
		if s := m.Stats(); s.Connections != 0 || s.PendingSendBytes != 0 {
			t.Errorf("after close: %+v", s)
		}
	})
}

// pattern is n deterministic bytes whose order a reader can check.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// TestCloseAfterTheDrivingThreadIsGone: the thread that drove a worker
// (WithFixedThreads: io_uring's single issuer) exits, and another closes
// the manager. Where the port refuses any other thread (io_uring), the
// worker is given up: Close returns promptly, every connection is closed
// once with poller.ErrPortLost (its peer sees the end), nothing leaks, not
// even the socket of a connect attempt in flight (a name whose address is
// a black hole). Elsewhere the closing thread drives the worker to a clean
// close.
func TestCloseAfterTheDrivingThreadIsGone(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		r := newRecorder()
		hole := fullListener(t)
		m := newManager(t, r, backend, engine.WithFixedThreads(true), raceLookup(hole.Addr()))
		l := listen(t, m)
		cli := dial(t, l.Addr().String())
		cli.Write([]byte("x"))
		accepted := make(chan *engine.Conn, 1)
		go func() {
			// Locked and never unlocked: the OS thread ends with the goroutine.
			runtime.LockOSThread()
			defer close(accepted)
			var c *engine.Conn
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
				evs, _ := m.Poll(0, 64, 10*time.Millisecond)
				for i := range evs {
					switch evs[i].Kind {
					case engine.EventAccept:
						c = evs[i].Conn
						r.OnOpen(c)
					case engine.EventRecv:
						// One more round posts the next receive, which
						// then stays outstanding on the port; so does the
						// connect of an attempt that will never answer.
						if _, err := m.ConnectHost("hole.test", hole.Port(), 0); err != nil {
							t.Error(err)
						}
						for range 5 {
							m.Poll(0, 64, 10*time.Millisecond)
						}
						accepted <- c
						return
					}
				}
			}
		}()
		srv := <-accepted
		if srv == nil {
			t.Fatal("no accept")
		}
		closed := make(chan struct{})
		go func() {
			m.Close(time.Second)
			close(closed)
		}()
		select {
		case <-closed:
		case <-time.After(10 * time.Second * slowdown):
			t.Fatal("Close still running 10 s after the driving thread was gone")
		}
		err := r.closeErrOf(srv.ID())
		if backend == "io_uring" {
			if !errors.Is(err, engine.ErrPortLost) {
				t.Errorf("closed with %s, want ErrPortLost", describe(err))
			}
		} else {
			wantNil(t, err)
		}
		r.checkExactlyOnce(t)
		cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(cli); err != nil && !errors.Is(err, errReset) {
			t.Errorf("the peer did not see the end: %v", err)
		}
		if s := m.Stats(); s.Connections != 0 || s.Listeners != 0 {
			t.Errorf("after close: %+v", s)
		}
	})
}
