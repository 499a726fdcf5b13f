// Command netecho is the Go yardstick of the benchmarks: an echo server on
// Go's net package, one goroutine per connection.
//
// Each goroutine reads into its own 32 KiB buffer and writes back what it
// read: the plain Go server. (io.Copy between two TCP sockets would splice
// through a pipe per connection instead: fewer copies on bulk, but two
// more file descriptors per idle connection and more system calls per
// small message, not what a Go server usually does.)
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netecho:", err)
		os.Exit(1)
	}
	fmt.Printf("netecho: listening on %s\n", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "netecho:", err)
			os.Exit(1)
		}
		go serve(c)
	}
}

func serve(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
