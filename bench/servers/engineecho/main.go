// Command engineecho is the ceiling of the benchmarks: pyiocp's engine
// with a Go handler, no Python at all.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

// echo sends back what arrives. A peer that writes far ahead of what it
// reads fills the send buffer: then the piece that did not fit is kept
// and reading stops until the buffer drains, as examples/echo.py does.
type echo struct {
	engine.NopHandler
	mu     sync.Mutex
	unsent map[*engine.Conn][]byte
}

func (e *echo) OnRecv(c *engine.Conn, data []byte) {
	// Data the worker had already harvested can still arrive after
	// PauseReading: it goes behind the kept piece, never ahead of it.
	e.mu.Lock()
	if held, ok := e.unsent[c]; ok {
		e.unsent[c] = append(held, data...)
		e.mu.Unlock()
		return
	}
	e.mu.Unlock()
	switch err := c.Send(data); err {
	case nil:
	case engine.ErrBufferFull:
		e.mu.Lock()
		e.unsent[c] = append([]byte(nil), data...) // data is only valid during the call
		e.mu.Unlock()
		c.PauseReading()
	default:
		c.Close()
	}
}

// OnDrain sends the kept bytes in pieces while they fit, then reads again
// once none is left (a piece that does not fit waits for the next drain).
func (e *echo) OnDrain(c *engine.Conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	data, ok := e.unsent[c]
	if !ok {
		return
	}
	for len(data) > 0 {
		n := min(len(data), 64<<10)
		if err := c.Send(data[:n]); err == engine.ErrBufferFull {
			e.unsent[c] = data
			return
		} else if err != nil {
			c.Close()
			return
		}
		data = data[n:]
	}
	delete(e.unsent, c)
	c.ResumeReading()
}

// OnDatagram sends a UDP datagram back to where it came from; one the
// endpoint's send buffer has no room for is dropped, as UDP's may be.
func (e *echo) OnDatagram(ep *engine.Endpoint, data []byte, addr netip.AddrPort) {
	ep.SendTo(data, addr)
}

func (e *echo) OnClose(c *engine.Conn, _ error) {
	e.mu.Lock()
	delete(e.unsent, c)
	e.mu.Unlock()
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	workers := flag.Int("workers", 1, "workers")
	backend := flag.String("backend", "auto", "auto, io_uring or epoll")
	udp := flag.Bool("udp", false, "echo UDP datagrams on -addr instead")
	flag.Parse()
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "engineecho:", err)
		os.Exit(2)
	}
	m, err := engine.New(&echo{unsent: map[*engine.Conn][]byte{}}, engine.WithWorkers(*workers), engine.WithBackend(*backend))
	if err != nil {
		fmt.Fprintln(os.Stderr, "engineecho:", err)
		os.Exit(2)
	}
	if *udp {
		ep, err := m.BindUDP(ap)
		if err != nil {
			fmt.Fprintln(os.Stderr, "engineecho:", err)
			os.Exit(1)
		}
		fmt.Printf("engineecho: listening on %s\n", ep.Addr())
	} else {
		l, err := m.Listen(ap)
		if err != nil {
			fmt.Fprintln(os.Stderr, "engineecho:", err)
			os.Exit(1)
		}
		fmt.Printf("engineecho: listening on %s\n", l.Addr())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; m.Close(time.Second) }()
	m.Run()
}
