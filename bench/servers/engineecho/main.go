// Command engineecho is the ceiling of the benchmarks: pyiocp's engine
// with a Go handler, no Python at all.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pyiocp/pyiocp/gomod/engine"
)

type echo struct{ engine.NopHandler }

func (echo) OnRecv(c *engine.Conn, data []byte) {
	if c.Send(data) != nil {
		c.Close()
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	workers := flag.Int("workers", 1, "workers")
	backend := flag.String("backend", "auto", "auto, io_uring or epoll")
	flag.Parse()
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "engineecho:", err)
		os.Exit(2)
	}
	m, err := engine.New(echo{}, engine.WithWorkers(*workers), engine.WithBackend(*backend))
	if err != nil {
		fmt.Fprintln(os.Stderr, "engineecho:", err)
		os.Exit(2)
	}
	l, err := m.Listen(ap)
	if err != nil {
		fmt.Fprintln(os.Stderr, "engineecho:", err)
		os.Exit(1)
	}
	fmt.Printf("engineecho: listening on %s\n", l.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() { <-sig; m.Close(time.Second) }()
	m.Run()
}
