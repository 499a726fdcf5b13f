package loadgen

import (
	"fmt"
	"net"
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
	Addr  string // "host:port" (IPv4 or [IPv6]:port)
	Conns int    // concurrent connections (>=1)
	Size  int    // bytes per message (>=1)
	// Depth is the number of messages in flight per connection (pipelining);
	// 0 means 1. All Depth messages are written before the first echo is
	// read, so Depth*Size must fit in the socket buffers of both ends (a few
	// hundred KiB on loopback) or a server that blocks on its writes
	// deadlocks with us; that ends as a ReplyTimeout error.
	Depth    int
	Duration time.Duration // measured run length (>0)
	Warmup   time.Duration // optional: traffic before measuring starts (not counted)

	ConnectTimeout time.Duration // 0 -> DefaultConnectTimeout
	// ReplyTimeout bounds the wait for one echo. A connection whose echo
	// takes longer fails with a timeout error (detected between 1x and 1.5x
	// ReplyTimeout, as deadlines are refreshed lazily). 0 -> DefaultReplyTimeout.
	ReplyTimeout time.Duration

	// Progress, if set, is called about once per second from one goroutine
	// (never concurrently, never after Run returns).
	Progress func(Progress)
}

// Validate reports the first bad value as a *ConfigError.
func (c Config) Validate() error {
	if c.Addr == "" {
		return &ConfigError{"Addr", `""`, "must be host:port"}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
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
	if m := c.memory(); m > MaxMemory {
		return &ConfigError{"Conns", c.Conns, fmt.Sprintf("buffers for Conns*(2*Size+read buffer+8*Depth) = %d bytes exceed MaxMemory (%d)", m, MaxMemory)}
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

// memory is the buffer space the run will allocate, in bytes.
func (c Config) memory() int64 {
	d := max(c.Depth, 1)
	per := int64(2*c.Size) + int64(readBufSize(c.Size, d)) + 8*int64(d)
	return int64(c.Conns) * per
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
