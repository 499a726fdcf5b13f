package engine_test

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// halfCloser serves two listeners. On peerFirst the peer uploads (a 4-byte
// reply size, then its bytes) and half-closes; the server answers after
// the FIN with the upload's SHA-256 and the reply bytes, then closes. On
// serverFirst the server sends an 8-byte header (size, seed) and that many
// bytes, and half-closes at once; the peer reads to EOF, then uploads and
// closes; the server keeps the upload's digest by the peer's port.
type halfCloser struct {
	engine.NopHandler
	serverLog
	largest     int           // the largest reply or upload
	serverFirst atomic.Uint32 // the port of the serverFirst listener
	got         uploads
}

type halfState struct {
	hdr   []byte
	reply int
	*connHash
}

func (h *halfCloser) OnOpen(c *engine.Conn) {
	c.Context = &halfState{connHash: newConnHash()}
	if uint32(c.Local().Port()) != h.serverFirst.Load() {
		return
	}
	size := int(c.ID()*7919) % (h.largest + 1)
	p, _ := payload(c.ID(), size)
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(size))
	binary.BigEndian.PutUint32(hdr[4:], uint32(c.ID()))
	h.check(c.Send(hdr[:]))
	h.check(c.Send(p))
	h.check(c.ShutdownWrite())
}

func (h *halfCloser) OnRecv(c *engine.Conn, data []byte) {
	st := c.Context.(*halfState)
	if uint32(c.Local().Port()) != h.serverFirst.Load() && len(st.hdr) < 4 {
		k := min(4-len(st.hdr), len(data))
		st.hdr = append(st.hdr, data[:k]...)
		data = data[k:]
		if len(st.hdr) == 4 {
			st.reply = int(binary.BigEndian.Uint32(st.hdr))
		}
	}
	st.add(data)
}

func (h *halfCloser) OnEOF(c *engine.Conn) {
	st := c.Context.(*halfState)
	u := st.upload()
	if uint32(c.Local().Port()) == h.serverFirst.Load() {
		h.got.put(c, u)
		c.Close()
		return
	}
	// The peer is done sending; this side goes on: digest, reply, close.
	p, _ := payload(uint64(st.reply), st.reply)
	h.check(c.Send(u.sum[:]))
	h.check(c.Send(p))
	c.Close()
}

func (h *halfCloser) OnClose(c *engine.Conn, err error) {
	h.closed(c)
	h.check(err)
}

// TestFaultHalfClose: half-close both ways, many connections at once:
// peers that send FIN first and then read the whole reply, and a server
// that sends FIN first and then reads the whole upload. Every byte checked
// by SHA-256, every connection closed once and cleanly.
func TestFaultHalfClose(t *testing.T) {
	forBackends(t, func(t *testing.T, backend string) {
		f := fault(t, "half_close", backend)
		each := scale(f, "connections each way", 100, 1000)
		h := &halfCloser{largest: scale(f, "largest", 256<<10, 1<<20)}
		m, peerFirst := serve(t, h, backend, engine.WithWorkers(2))
		l2 := listen(t, m)
		h.serverFirst.Store(uint32(l2.Addr().Port()))
		var bytesUp, bytesDown atomic.Int64
		runClients(t, 2*each, func(i int) error {
			if i%2 == 0 {
				return peerHalfClosesFirst(peerFirst, uint64(i), h.largest, &bytesUp, &bytesDown)
			}
			return serverHalfClosesFirst(h, l2.Addr().String(), uint64(i), &bytesUp, &bytesDown)
		})
		settle(t, "every connection closed", func() bool { return m.Stats().Closed == uint64(2*each) })
		h.report(t)
		f.sized("%d peers FIN first + %d with the server FIN first, 0-%s each way; %s up, %s down",
			each, each, mib(int64(h.largest)), mib(bytesUp.Load()), mib(bytesDown.Load()))
	})
}

func peerHalfClosesFirst(addr string, seed uint64, largest int, up, down *atomic.Int64) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(faultWait))
	rng := rand.New(rand.NewPCG(seed, 3))
	reply, size := rng.IntN(largest+1), rng.IntN(largest+1)
	p, sum := payload(seed, size)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(reply))
	if _, err := c.Write(append(hdr[:], p...)); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	up.Add(int64(size))
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	down.Add(int64(len(got)))
	want, _ := payload(uint64(reply), reply)
	if len(got) != 32+reply || [32]byte(got[:32]) != sum {
		return errors.New("the server's digest of the upload is wrong")
	}
	if sha256.Sum256(got[32:]) != sha256.Sum256(want) {
		return errors.New("the reply after the half-close differs")
	}
	return nil
}

func serverHalfClosesFirst(h *halfCloser, addr string, seed uint64, up, down *atomic.Int64) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(faultWait))
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if len(got) < 8 {
		return errors.New("short header")
	}
	size, id := int(binary.BigEndian.Uint32(got[:4])), uint64(binary.BigEndian.Uint32(got[4:8]))
	want, _ := payload(id, size)
	if len(got) != 8+size || sha256.Sum256(got[8:]) != sha256.Sum256(want) {
		return errors.New("the bytes before the server's FIN differ")
	}
	down.Add(int64(size))
	// The server's write side is shut; its read side is open: upload.
	n := rand.New(rand.NewPCG(seed, 5)).IntN(h.largest + 1)
	p, sum := payload(seed, n)
	if _, err := c.Write(p); err != nil {
		return err
	}
	up.Add(int64(n))
	port := localPort(c)
	c.Close()
	deadline := time.Now().Add(faultWait)
	for {
		if u, ok := h.got.get(port); ok {
			if u.n != n || u.sum != sum {
				return errors.New("the upload after the server's FIN differs")
			}
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the server never finished the upload")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
