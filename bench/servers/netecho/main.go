// Command netecho is the Go yardstick of the benchmarks: an echo server on
// Go's net package, one goroutine per connection; with -tls-cert and
// -tls-key, behind crypto/tls; with -unix, on a Unix domain socket.
//
// Each goroutine reads into its own 32 KiB buffer and writes back what it
// read: the plain Go server. (io.Copy between two TCP sockets would splice
// through a pipe per connection instead: fewer copies on bulk, but two
// more file descriptors per idle connection and more system calls per
// small message, not what a Go server usually does.)
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"os"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	certFile := flag.String("tls-cert", "", "speak TLS with this certificate chain (PEM)")
	keyFile := flag.String("tls-key", "", "its key (PEM)")
	unixPath := flag.String("unix", "", "listen on this Unix domain socket instead (a file there is replaced)")
	udp := flag.Bool("udp", false, "echo UDP datagrams on -addr instead")
	flag.Parse()
	if *udp {
		serveUDP(*addr)
		return
	}
	network, where := "tcp", *addr
	if *unixPath != "" {
		network, where = "unix", *unixPath
		os.Remove(where) // a server killed before left it
	}
	l, err := net.Listen(network, where)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netecho:", err)
		os.Exit(1)
	}
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "netecho:", err)
			os.Exit(1)
		}
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	if network == "unix" {
		fmt.Printf("netecho: listening on unix:%s\n", where)
	} else {
		fmt.Printf("netecho: listening on %s\n", l.Addr())
	}
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

// serveUDP sends every datagram back to where it came from, from one
// goroutine (the server runs on one CPU).
func serveUDP(addr string) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netecho:", err)
		os.Exit(1)
	}
	fmt.Printf("netecho: listening on %s\n", pc.LocalAddr())
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "netecho:", err)
			os.Exit(1)
		}
		pc.WriteTo(buf[:n], from) // a datagram that cannot go is lost, as UDP's are
	}
}
