package loadgen

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Limits that Validate enforces. They keep a mistyped value from a Python
// caller from becoming an allocation that kills the whole process.
const (
	MaxConns  = 100_000
	MaxSize   = 64 << 20
	MaxDepth  = 1 << 16
	MaxMemory = 1 << 30 // bytes of buffers for all connections together
)

// Defaults applied by Run for zero values.
const (
	DefaultConnectTimeout = 5 * time.Second
	DefaultReplyTimeout   = 5 * time.Second

	maxReplyTimeout = 1000 * time.Hour
)

// Config describes one load-generating run.
type Config struct {
	// Mode is what the run does: ModeEcho ("" means the same), ModeChurn,
	// ModeBulk or ModeIdle; see those for how each uses the fields below.
	Mode string
	// Addr is "host:port" (IPv4 or [IPv6]:port), "unix:PATH" (a Unix
	// domain socket; "unix:@name": abstract) or "udp:host:port" (a UDP echo
	// server: each connection is a connected UDP socket and each message
	// one datagram; ModeEcho with ClientNet only).
	Addr  string
	Conns int // concurrent connections (>=1)
	Size  int // bytes per message (>=1)
	// Depth is the number of messages in flight per connection (pipelining);
	// 0 means 1. All Depth messages are written before the first echo is
	// read, so Depth*Size must fit in the socket buffers of both ends (a few
	// hundred KiB on loopback) or a server that blocks on its writes
	// deadlocks with us; that ends as a ReplyTimeout error. Only ModeEcho
	// pipelines: the other modes take 0 or 1.
	Depth int
	// Framing makes each ModeEcho message one frame, for servers that
	// split their input: FramingLines (a line ending with "\n") or
	// FramingLength (a 4-byte big-endian length, then the rest); "" is
	// none. The echo is still the same bytes.
	Framing string
	// Client is what drives ModeEcho's connections: ClientNet ("" means
	// the same) or ClientEngine. The other modes take only ClientNet.
	Client string
	// TLS speaks TLS 1.3 to the server (ClientNet only): a full handshake
	// per connection, the server's certificate not checked (tls.go).
	TLS bool
	// Duration is the measured run length (>0); for ModeBulk it is a time
	// limit (a transfer not done by then is an error), for ModeIdle how long
	// the connections sit idle.
	Duration time.Duration
	Warmup   time.Duration // optional: traffic before measuring starts (not counted); ModeBulk and ModeIdle ignore it
	// Bytes is what each connection streams in ModeBulk (1..MaxBytes); it
	// must be 0 in the other modes.
	Bytes int64

	ConnectTimeout time.Duration // 0 -> DefaultConnectTimeout
	// ReplyTimeout bounds the wait for one echo. A connection whose echo
	// takes longer fails with a timeout error (detected between 1x and 1.5x
	// ReplyTimeout, as deadlines are refreshed lazily). 0 -> DefaultReplyTimeout.
	ReplyTimeout time.Duration

	// Progress, if set, is called about once per second from one goroutine
	// (never concurrently, never after Run returns); ModeEcho and ModeChurn
	// only.
	Progress func(Progress)

	// Ready, if set, is called once in ModeIdle with the number of
	// connections that are open and have echoed, before they sit idle
	// (from Run's goroutine; not called when none could be opened or ctx
	// ended first).
	Ready func(connected int)
}

// Validate reports the first bad value as a *ConfigError.
func (c Config) Validate() error {
	if c.Addr == "" {
		return &ConfigError{"Addr", `""`, "must be host:port, unix:PATH or udp:host:port"}
	}
	if network, address := c.target(); network == "unix" {
		if address == "" {
			return &ConfigError{"Addr", c.Addr, "names no path after unix:"}
		}
	} else if _, _, err := net.SplitHostPort(address); err != nil {
		return &ConfigError{"Addr", c.Addr, err.Error()}
	}
	switch {
	case c.Conns <= 0 || c.Conns > MaxConns:
		return &ConfigError{"Conns", c.Conns, fmt.Sprintf("must be in 1..%d", MaxConns)}
	case c.Size <= 0 || c.Size > MaxSize:
		return &ConfigError{"Size", c.Size, fmt.Sprintf("must be in 1..%d", MaxSize)}
	case c.Depth < 0 || c.Depth > MaxDepth:
		return &ConfigError{"Depth", c.Depth, fmt.Sprintf("must be in 0..%d", MaxDepth)}
	case c.Duration <= 0:
		return &ConfigError{"Duration", c.Duration, "must be > 0"}
	case c.Warmup < 0:
		return &ConfigError{"Warmup", c.Warmup, "must be >= 0"}
	case c.ConnectTimeout < 0:
		return &ConfigError{"ConnectTimeout", c.ConnectTimeout, "must be >= 0"}
	case c.ReplyTimeout < 0:
		return &ConfigError{"ReplyTimeout", c.ReplyTimeout, "must be >= 0"}
	}
	if err := c.validateMode(); err != nil {
		return err
	}
	if m, formula := c.memory(); m > MaxMemory {
		return &ConfigError{"Conns", c.Conns, fmt.Sprintf("buffers for %s = %d bytes exceed MaxMemory (%d)", formula, m, MaxMemory)}
	}
	return nil
}

// withDefaults fills the zero values that mean "default".
func (c Config) withDefaults() Config {
	if c.Depth == 0 {
		c.Depth = 1
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.ReplyTimeout == 0 {
		c.ReplyTimeout = DefaultReplyTimeout
	}
	// The worker adds half again to it; keep that from overflowing.
	c.ReplyTimeout = min(c.ReplyTimeout, maxReplyTimeout)
	return c
}

// memory is the buffer space the run will allocate, in bytes, and how it
// is reckoned. Every mode holds a send and a receive buffer of Size bytes
// per goroutine that drives a connection; ModeIdle drives idleParallel
// connections at a time.
func (c Config) memory() (int64, string) {
	switch c.mode() {
	case ModeChurn, ModeBulk:
		return int64(c.Conns) * int64(2*c.Size), "Conns*2*Size"
	case ModeIdle:
		return int64(min(c.Conns, idleParallel)) * int64(2*c.Size), fmt.Sprintf("min(Conns,%d)*2*Size", idleParallel)
	}
	d := max(c.Depth, 1)
	if c.Client == ClientEngine { // the first Depth messages go out in one send
		return int64(c.Conns) * (int64(c.Size)*int64(d+1) + 8*int64(d)), "Conns*(Size*(Depth+1)+8*Depth)"
	}
	per := int64(2*c.Size) + int64(readBufSize(c.Size, d)) + 8*int64(d)
	return int64(c.Conns) * per, "Conns*(2*Size+read buffer+8*Depth)"
}

// readBufSize is the bufio buffer of a pipelined connection: big enough to
// pick up several queued echoes per read system call. Depth 1 reads straight
// from the socket, as only one echo is ever queued.
func readBufSize(size, depth int) int {
	if depth <= 1 {
		return 0
	}
	return min(max(size*depth, 4096), 64<<10)
}

// unixPrefix marks an Addr that names a Unix domain socket, udpPrefix
// one that names a UDP server.
const (
	unixPrefix = "unix:"
	udpPrefix  = "udp:"
)

// MaxDatagram bounds Size over UDP: the largest IPv4 UDP payload.
const MaxDatagram = 65507

// target is the network and address Addr names, as net.Dial takes them.
func (c Config) target() (network, address string) {
	if path, ok := strings.CutPrefix(c.Addr, unixPrefix); ok {
		return "unix", path
	}
	if hostPort, ok := strings.CutPrefix(c.Addr, udpPrefix); ok {
		return "udp", hostPort
	}
	return "tcp", c.Addr
}
