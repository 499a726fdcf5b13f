package poller

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// Tests of the contract in poller.go, run for every backend.

func forBackends(t *testing.T, f func(t *testing.T, p Poller)) {
	for _, name := range Backends() {
		forBackend(t, name, f)
	}
}

// forBackend runs f on a port of the named backend, and for io_uring with
// capped multishot receives, then again with single-shot ones.
func forBackend(t *testing.T, name string, f func(t *testing.T, p Poller)) {
	variants := []bool{false}
	if hasSingleShot(name) {
		variants = []bool{false, true} // capped multishot, then single-shot receives
	}
	for _, single := range variants {
		label := name
		if single {
			label += "-singleshot"
		}
		t.Run(label, func(t *testing.T) {
			setSingleShot(single)
			defer setSingleShot(false)
			// One OS thread drives a port, as in the engine.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			p, _, err := Open(name, Config{FixedThread: true})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			f(t, p)
			checkSettled(t, p)
		})
	}
}

// leftover holds completions a harvest took beyond what it was asked for
// (a multishot receive can complete several times in one Wait).
var leftover = map[Poller][]Completion{}

// harvest waits up to 5 s until want completions arrived and returns them.
func harvest(t *testing.T, p Poller, want int) []Completion {
	t.Helper()
	got := leftover[p]
	batch := make([]Completion, 64)
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < want {
		if time.Now().After(deadline) {
			t.Fatalf("got %d completions, want %d: %+v", len(got), want, got)
		}
		n, err := p.Wait(batch, 50*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range batch[:n] {
			c.Data = append([]byte(nil), c.Data...) // valid only until the next Wait
			got = append(got, c)
		}
	}
	leftover[p] = got[want:]
	return got[:want]
}

// quiet checks that no completion arrives for a while.
func quiet(t *testing.T, p Poller) {
	t.Helper()
	if len(leftover[p]) > 0 {
		t.Fatalf("unexpected completions: %+v", leftover[p])
	}
	batch := make([]Completion, 8)
	if n, _ := p.Wait(batch, 50*time.Millisecond); n != 0 {
		t.Fatalf("unexpected completions: %+v", batch[:n])
	}
}

// pair returns a socket accepted through p (registered, token 7) and the
// client end.
func pair(t *testing.T, p Poller) (Ref, net.Conn) {
	t.Helper()
	l, addr := listen(t, p, "127.0.0.1:0", 16, 1)
	defer p.Unregister(l) // its one posted accept has completed
	cli, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	p.PostAccept(l, 1)
	c := harvest(t, p, 1)[0]
	if c.Op != OpAccept || c.Err != nil || c.Token != 1 || c.Peer.String() != cli.LocalAddr().String() {
		t.Fatalf("accept completion %+v", c)
	}
	return register(t, p.Register, c.Sock, 7), cli
}

// listen opens a listener on addr registered with p, closed when the test
// ends; the caller unregisters it.
func listen(t *testing.T, p Poller, addr string, backlog int, token uint64) (Ref, netip.AddrPort) {
	t.Helper()
	ls, local, err := ListenTCP(netip.MustParseAddrPort(addr), backlog, false, &SockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { CloseSock(ls) })
	return register(t, p.Listen, ls, token), local
}

// register registers s with p by add (its Register or Listen).
func register(t *testing.T, add func(Sock, uint64) (Ref, error), s Sock, token uint64) Ref {
	t.Helper()
	r, err := add(s, token)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// release forgets and closes a socket with no operation outstanding.
func release(p Poller, r Ref) {
	p.Unregister(r)
	CloseSock(r.Sock())
}

// acceptConns accepts n connections through p, each registered with its
// socket as token, and returns them with their client ends, in the same
// order.
func acceptConns(t *testing.T, p Poller, n int) ([]Ref, []net.Conn) {
	t.Helper()
	l, addr := listen(t, p, "127.0.0.1:0", n, 1)
	defer p.Unregister(l)
	clients := make([]net.Conn, n)
	byPort := make(map[uint16]int, n)
	for i := range clients {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
		t.Cleanup(func() { c.Close() })
		byPort[uint16(c.LocalAddr().(*net.TCPAddr).Port)] = i
	}
	p.PostAccept(l, n)
	socks := make([]Ref, n)
	for _, c := range harvest(t, p, n) {
		i, ok := byPort[c.Peer.Port()]
		if c.Op != OpAccept || c.Err != nil || !ok {
			t.Fatalf("accept: %+v", c)
		}
		socks[i] = register(t, p.Register, c.Sock, uint64(c.Sock))
	}
	return socks, clients
}

// TestRecvSeesEOFBehindData: data and the peer's FIN that arrived together
// come as the data, then the end of stream.
func TestRecvSeesEOFBehindData(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		s, cli := pair(t, p)
		cli.Write([]byte("last words"))
		cli.(*net.TCPConn).CloseWrite()
		time.Sleep(20 * time.Millisecond) // both are queued before the first read
		p.PostRecv(s, 1<<16)
		if c := harvest(t, p, 1)[0]; c.Op != OpRecv || string(c.Data) != "last words" || c.Token != 7 {
			t.Fatalf("first receive %+v", c)
		}
		p.PostRecv(s, 1<<16)
		if c := harvest(t, p, 1)[0]; c.Op != OpRecv || len(c.Data) != 0 || c.Err != nil {
			t.Fatalf("second receive %+v, want end of stream", c)
		}
		release(p, s)
	})
}

// TestRecvRespectsMax: a receive never returns more than it was posted
// for, or than one provided buffer where the backend reads into those.
func TestRecvRespectsMax(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		s, cli := pair(t, p)
		cli.Write(make([]byte, 3*recvBufSize))
		limit := 300
		if p.Name() == "io_uring" {
			limit = recvBufSize
		}
		for total := 0; total < 3*recvBufSize; {
			p.PostRecv(s, 300)
			c := harvest(t, p, 1)[0]
			if len(c.Data) > limit || len(c.Data) == 0 {
				t.Fatalf("receive of %d bytes posted for 300", len(c.Data))
			}
			total += len(c.Data)
		}
		release(p, s)
	})
}

// TestUnpostedSocketIsNotRead: with no receive posted, a socket is read no
// further than the last post's max (lesson 1): the peer's writes block,
// and every byte is delivered, in order, once receives are posted again.
// io_uring's capped receive may overshoot by one buffer: the read that
// reaches the cap fills its buffer.
func TestUnpostedSocketIsNotRead(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		s, cli := pair(t, p)
		setRecvBuffer(s.Sock(), 128<<10)
		const max = 64 << 10
		p.PostRecv(s, max)
		payload := make([]byte, 8<<20)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		cli.(*net.TCPConn).SetWriteBuffer(64 << 10)
		// The peer writes in chunks and counts what the kernel took: a
		// write deadline would be simpler, but Wine does not always cancel
		// a blocked overlapped send when it expires.
		var written atomic.Int64
		go func() {
			for off := 0; off < len(payload); off += 16 << 10 {
				n, err := cli.Write(payload[off:min(off+16<<10, len(payload))])
				written.Add(int64(n))
				if err != nil {
					return
				}
			}
		}()
		first := harvest(t, p, 1)[0]
		got := append([]byte(nil), first.Data...)
		// Rounds go on with nothing posted for this socket.
		for i := 0; i < 10; i++ {
			p.Wait(make([]Completion, 8), 30*time.Millisecond)
		}
		if written.Load() == int64(len(payload)) {
			t.Fatal("the peer wrote everything to a socket nobody reads")
		}
		if a, ok := readAhead(p, s); ok && a > max+recvBufSize {
			t.Fatalf("read %d bytes ahead, max %d", a, max)
		}
		for len(got) < len(payload) {
			p.PostRecv(s, max)
			c := harvest(t, p, 1)[0]
			if c.Err != nil || len(c.Data) == 0 {
				t.Fatalf("after %d bytes: %+v", len(got), c)
			}
			got = append(got, c.Data...)
		}
		if string(got) != string(payload) {
			t.Fatal("bytes differ or are out of order")
		}
		release(p, s)
	})
}

// TestCancelCompletesEachOperationOnce: every outstanding operation
// completes exactly once with ErrCanceled, and nothing after.
func TestCancelCompletesEachOperationOnce(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		s, _ := pair(t, p)
		p.PostRecv(s, 1<<16)
		big := make([]byte, 64<<20) // more than the socket takes: the send stays posted
		n, done, err := p.PostSend(s, [][]byte{big})
		for err == nil && done && n < len(big) {
			big = big[n:]
			n, done, err = p.PostSend(s, [][]byte{big})
		}
		if err != nil || done {
			t.Fatalf("send did not stay posted: %d %v %v", n, done, err)
		}
		p.Cancel(s)
		got := harvest(t, p, 2)
		ops := map[Op]int{}
		for _, c := range got {
			// A send that made progress before the cancel reports it.
			partial := c.Op == OpSend && c.Err == nil && c.N > 0
			if (!errors.Is(c.Err, ErrCanceled) && !partial) || c.Token != 7 {
				t.Errorf("completion %+v, want ErrCanceled", c)
			}
			ops[c.Op]++
		}
		if ops[OpRecv] != 1 || ops[OpSend] != 1 {
			t.Fatalf("completions %v", ops)
		}
		quiet(t, p)
		release(p, s)
	})
}

// TestSendPartialThenCompletes: a send the socket cannot take at once
// completes when the peer reads, with the count written.
func TestSendPartialThenCompletes(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		s, cli := pair(t, p)
		data := make([]byte, 32<<20)
		for i := range data {
			data[i] = byte(i)
		}
		read := make(chan int)
		go func() {
			got, _ := io.ReadAll(cli)
			read <- len(got)
		}()
		rest := data
		for len(rest) > 0 {
			n, done, err := p.PostSend(s, [][]byte{rest[:len(rest)/2], rest[len(rest)/2:]})
			if err != nil {
				t.Fatal(err)
			}
			if !done {
				c := harvest(t, p, 1)[0]
				if c.Op != OpSend || c.Err != nil || c.N <= 0 {
					t.Fatalf("send completion %+v", c)
				}
				n = c.N
			}
			rest = rest[n:]
		}
		release(p, s)
		if n := <-read; n != len(data) {
			t.Errorf("peer got %d bytes of %d", n, len(data))
		}
	})
}

// TestSendSliceReusable: the slice of slices given to PostSend may be
// reused as soon as the call returns (the bytes may not): one slice is
// overwritten after every post, its headers cleared and pointed at other
// bytes, and still each peer gets its own bytes, in order, and each send
// completes with what it wrote.
func TestSendSliceReusable(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		socks, clis := acceptConns(t, p, 2)
		data := [2][]byte{make([]byte, 16<<20), make([]byte, 16<<20)}
		for i := range data[0] {
			data[0][i], data[1][i] = byte(i), byte(i*7+1)
		}
		var read [2]chan []byte
		for i, cli := range clis {
			read[i] = make(chan []byte, 1)
			go func() {
				got, _ := io.ReadAll(cli)
				read[i] <- got
			}()
		}
		iov := make([][]byte, 2)
		rest := [2][]byte{data[0], data[1]}
		posted := [2]bool{}
		for len(rest[0])+len(rest[1]) > 0 || posted[0] || posted[1] {
			for i, s := range socks {
				if posted[i] || len(rest[i]) == 0 {
					continue
				}
				half := len(rest[i]) / 2
				iov[0], iov[1] = rest[i][:half], rest[i][half:]
				n, done, err := p.PostSend(s, iov)
				clear(iov) // the caller's to reuse at once
				iov[0] = data[1-i][:1]
				if err != nil {
					t.Fatal(err)
				}
				if done {
					rest[i] = rest[i][n:]
				} else {
					posted[i] = true
				}
			}
			if !posted[0] && !posted[1] {
				continue
			}
			for _, c := range harvest(t, p, 1) {
				// acceptConns: the socket is the token
				i := slices.IndexFunc(socks, func(r Ref) bool { return r.Sock() == Sock(c.Token) })
				if c.Op != OpSend || c.Err != nil || c.N <= 0 || i < 0 || !posted[i] {
					t.Fatalf("send completion %+v", c)
				}
				posted[i] = false
				rest[i] = rest[i][c.N:]
			}
		}
		for _, s := range socks {
			release(p, s)
		}
		for i := range clis {
			if got := <-read[i]; string(got) != string(data[i]) {
				t.Errorf("peer %d got %d bytes, not its %d in order", i, len(got), len(data[i]))
			}
		}
	})
}

// TestSendSkipsEmptySlices: every backend keeps one rule for empty
// slices: they are skipped, and a send of nothing completes at once.
func TestSendSkipsEmptySlices(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		s, cli := pair(t, p)
		if n, done, err := p.PostSend(s, [][]byte{{}, nil, {}}); n != 0 || !done || err != nil {
			t.Fatalf("a send of nothing: %d, %v, %v", n, done, err)
		}
		n, done, err := p.PostSend(s, [][]byte{{}, []byte("ab"), nil, []byte("c"), {}})
		if err != nil {
			t.Fatal(err)
		}
		if !done {
			c := harvest(t, p, 1)[0]
			if c.Op != OpSend || c.Err != nil {
				t.Fatalf("send completion %+v", c)
			}
			n = c.N
		}
		if n != 3 {
			t.Fatalf("wrote %d bytes of 3", n)
		}
		got := make([]byte, 3)
		if _, err := io.ReadFull(cli, got); err != nil || string(got) != "abc" {
			t.Fatalf("peer read %q, %v", got, err)
		}
		release(p, s)
	})
}

// TestFailedPostProducesNoCompletion: a post that fails returns the error
// and nothing completes for it later; a backend that reports the failure
// as a completion instead does so exactly once.
func TestFailedPostProducesNoCompletion(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		addr := netip.MustParseAddrPort("127.0.0.1:9")
		cs, err := NewConnectSocket(addr, &SockOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s := register(t, p.Register, cs, 9)
		// An IPv6 address on an IPv4 socket: the connect fails.
		done, err := p.PostConnect(s, netip.AddrPortFrom(netip.IPv6Loopback(), addr.Port()))
		switch {
		case err != nil:
			quiet(t, p) // failed at the post: no completion follows
		case done:
			t.Fatal("connect of an IPv4 socket to an IPv6 address succeeded")
		default:
			if c := harvest(t, p, 1)[0]; c.Op != OpConnect || c.Err == nil {
				t.Fatalf("the failed connect completed with %+v", c)
			}
			quiet(t, p)
		}
		release(p, s)
	})
}

// TestAcceptBatch: n posted accepts complete at most n times, and the
// rest wait for the next post.
func TestAcceptBatch(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		l, addr := listen(t, p, "127.0.0.1:0", 64, 3)
		for i := 0; i < 5; i++ {
			c, err := net.Dial("tcp", addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		p.PostAccept(l, 3)
		got := harvest(t, p, 3)
		quiet(t, p)
		p.PostAccept(l, 3)
		got = append(got, harvest(t, p, 2)...)
		for _, c := range got {
			if c.Op != OpAccept || c.Err != nil {
				t.Fatalf("%+v", c)
			}
			CloseSock(c.Sock)
		}
		p.Cancel(l)
		if c := harvest(t, p, 1)[0]; !errors.Is(c.Err, ErrCanceled) || c.Sock != NoSock {
			t.Fatalf("canceled accept %+v", c)
		}
		quiet(t, p)
		p.Unregister(l)
	})
}

// TestWakeReturnsBlockedWait: Wake from another goroutine ends a Wait
// blocked without a timeout.
func TestWakeReturnsBlockedWait(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		done := make(chan struct{})
		go func() {
			p.Wait(make([]Completion, 4), -1)
			close(done)
		}()
		time.Sleep(20 * time.Millisecond)
		p.Wake()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Wake did not end the Wait")
		}
	})
}

func TestUnknownBackend(t *testing.T) {
	var ub *UnknownBackendError
	if _, _, err := Open("kqueue", Config{}); !errors.As(err, &ub) {
		t.Fatalf("Open(kqueue): %v", err)
	}
}

// TestRetoken: after Retoken, the socket's completions carry the new
// token (a connect attempt's socket becoming its connection's), receives
// and sends alike.
func TestRetoken(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		s, cli := pair(t, p)
		cli.Write([]byte("before"))
		p.PostRecv(s, 1<<16)
		if c := harvest(t, p, 1)[0]; c.Op != OpRecv || c.Token != 7 {
			t.Fatalf("before: %+v", c)
		}
		p.Retoken(s, 9)
		cli.Write([]byte("after"))
		p.PostRecv(s, 1<<16)
		if c := harvest(t, p, 1)[0]; c.Op != OpRecv || string(c.Data) != "after" || c.Token != 9 {
			t.Fatalf("after: %+v", c)
		}
		if _, done, err := p.PostSend(s, [][]byte{[]byte("x")}); err != nil {
			t.Fatal(err)
		} else if !done {
			if c := harvest(t, p, 1)[0]; c.Op != OpSend || c.Token != 9 {
				t.Fatalf("send: %+v", c)
			}
		}
		release(p, s)
	})
}
