package poller

import (
	"bytes"
	"net/netip"
	"testing"
)

// udpPair binds two datagram sockets on the loopback to p: a (token 1)
// and b (token 2), each with slots receives of size bytes.
func udpPair(t *testing.T, p Poller, size, slots int) (a, b Ref, bAddr netip.AddrPort) {
	t.Helper()
	refs := make([]Ref, 2)
	for i := range refs {
		s, local, err := OpenUDP(netip.MustParseAddrPort("127.0.0.1:0"), false, false, netip.AddrPort{})
		if err != nil {
			t.Fatal(err)
		}
		if refs[i], err = p.BindDatagram(s, uint64(i+1), size, slots); err != nil {
			CloseSock(s)
			t.Fatal(err)
		}
		bAddr = local
	}
	return refs[0], refs[1], bAddr
}

// sendAndReceive sends msgs from a and returns the want completions of
// other operations that come meanwhile: the send is done at once, or
// through one OpSendTo, which may come after the receives it caused.
func sendAndReceive(t *testing.T, p Poller, a Ref, msgs []Datagram, want int) []Completion {
	t.Helper()
	n, done, err := p.PostSendTo(a, msgs)
	if !done && err != nil {
		t.Fatal(err)
	}
	if done {
		return check(t, n, len(msgs), err, harvest(t, p, want))
	}
	var others []Completion
	for _, c := range harvest(t, p, want+1) {
		if c.Op == OpSendTo && c.Token == 1 {
			n, err = c.N, c.Err
		} else {
			others = append(others, c)
		}
	}
	return check(t, n, len(msgs), err, others)
}

func check(t *testing.T, n, want int, err error, cs []Completion) []Completion {
	t.Helper()
	if n != want || err != nil {
		t.Fatalf("sent %d of %d: %v", n, want, err)
	}
	return cs
}

// closeDgram cancels r's operations, takes their completions, and closes it.
func closeDgram(t *testing.T, p Poller, r Ref, outstanding int) {
	t.Helper()
	p.Cancel(r)
	for _, c := range harvest(t, p, outstanding) {
		if c.Op != OpRecvFrom || c.Err != ErrCanceled {
			t.Errorf("after Cancel: %+v, want a canceled receive", c)
		}
	}
	p.Unregister(r)
	CloseSock(r.Sock())
}

// TestDatagramsWholeAndTruncated: each receive completes with one whole
// datagram and its sender's address; one longer than the receive size
// completes with ErrTruncated and no data; Cancel completes each posted
// receive once.
func TestDatagramsWholeAndTruncated(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		a, b, bAddr := udpPair(t, p, 64, 4)
		aAddr, _ := LocalAddr(a.Sock())
		if err := p.PostRecvFrom(b, 4); err != nil {
			t.Fatal(err)
		}
		msgs := []Datagram{
			{Data: []byte("first"), Addr: bAddr},
			{Data: bytes.Repeat([]byte("L"), 100), Addr: bAddr},
			{Data: []byte("third"), Addr: bAddr},
		}
		got := sendAndReceive(t, p, a, msgs, 3)
		var whole []string
		truncated := 0
		for _, c := range got {
			switch {
			case c.Op != OpRecvFrom || c.Token != 2 || c.Peer != aAddr:
				t.Errorf("completion %+v, want a receive from %v", c, aAddr)
			case c.Err == ErrTruncated:
				truncated++
				if c.Data != nil || c.N < 64 {
					t.Errorf("truncated: %d bytes of data, N %d", len(c.Data), c.N)
				}
			case c.Err != nil:
				t.Errorf("receive: %v", c.Err)
			default:
				whole = append(whole, string(c.Data))
			}
		}
		if truncated != 1 || len(whole) != 2 || whole[0] == whole[1] {
			t.Errorf("whole %q, truncated %d; want first and third, one", whole, truncated)
		}
		closeDgram(t, p, b, 1)
		closeDgram(t, p, a, 0)
		quiet(t, p)
	})
}

// TestDatagramsBeyondPostedReceivesWait: datagrams that come while fewer
// receives are posted than arrive are not lost: each later post takes the
// next, whole, and the last delivered stays intact until the next Wait.
func TestDatagramsBeyondPostedReceivesWait(t *testing.T) {
	forBackends(t, func(t *testing.T, p Poller) {
		a, b, bAddr := udpPair(t, p, 64, 1)
		if err := p.PostRecvFrom(b, 1); err != nil {
			t.Fatal(err)
		}
		const n = 8
		var msgs []Datagram
		for i := range n {
			msgs = append(msgs, Datagram{Data: []byte{'d', byte('0' + i)}, Addr: bAddr})
		}
		got := map[string]bool{}
		for _, c := range sendAndReceive(t, p, a, msgs, 1) {
			got[string(c.Data)] = true
		}
		for len(got) < n {
			if err := p.PostRecvFrom(b, 1); err != nil {
				t.Fatal(err)
			}
			for _, c := range harvest(t, p, 1) {
				if c.Op != OpRecvFrom || c.Err != nil || len(c.Data) != 2 || got[string(c.Data)] {
					t.Fatalf("completion %+v (have %v)", c, got)
				}
				got[string(c.Data)] = true
			}
		}
		closeDgram(t, p, b, 0)
		closeDgram(t, p, a, 0)
		quiet(t, p)
	})
}
