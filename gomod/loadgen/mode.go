package loadgen

import (
	"context"
	"fmt"
)

// Modes of a Run, the values of Config.Mode. Every mode works against any
// TCP echo server and verifies every echoed byte.
const (
	// ModeEcho (also ""): Conns connections each keep Depth messages of Size
	// bytes in flight for Warmup+Duration; rates and latencies cover
	// Duration.
	ModeEcho = "echo"
	// ModeChurn: Conns goroutines each connect, echo one message of Size
	// bytes and close, over and over, for Warmup+Duration. A cycle is one
	// message; its latency runs from the connect to the verified echo.
	ModeChurn = "churn"
	// ModeBulk: Conns connections each stream Bytes bytes to the server in
	// writes of Size bytes while a second goroutine reads the echoed stream
	// back and verifies it. Duration is a time limit, not a run length;
	// ReplyTimeout bounds a stall of either direction.
	ModeBulk = "bulk"
	// ModeIdle: Conns connections are opened and each echoes one message;
	// then Config.Ready is called, the connections sit idle for Duration,
	// and each echoes one more message before it is closed.
	ModeIdle = "idle"
)

// MaxBytes bounds Config.Bytes (per connection, for ModeBulk).
const MaxBytes = 1 << 40

// idleParallel is how many connections ModeIdle opens (and checks) at a
// time, so a listener's accept backlog is never overrun by thousands of
// SYNs at once.
const idleParallel = 256

// mode is c.Mode with "" spelled out.
func (c Config) mode() string {
	if c.Mode == "" {
		return ModeEcho
	}
	return c.Mode
}

// validateMode checks the fields whose meaning depends on Mode.
func (c Config) validateMode() error {
	m := c.mode()
	switch m {
	case ModeEcho, ModeChurn, ModeBulk, ModeIdle:
	default:
		return &ConfigError{"Mode", c.Mode, fmt.Sprintf("must be %q, %q, %q or %q", ModeEcho, ModeChurn, ModeBulk, ModeIdle)}
	}
	switch {
	case m == ModeBulk && (c.Bytes <= 0 || c.Bytes > MaxBytes):
		return &ConfigError{"Bytes", c.Bytes, fmt.Sprintf("must be in 1..%d for Mode %s", int64(MaxBytes), ModeBulk)}
	case m != ModeBulk && c.Bytes != 0:
		return &ConfigError{"Bytes", c.Bytes, fmt.Sprintf("must be 0 unless Mode is %s", ModeBulk)}
	case c.Framing != "" && c.Framing != FramingLines && c.Framing != FramingLength:
		return &ConfigError{"Framing", c.Framing, fmt.Sprintf("must be %q, %q or %q", "", FramingLines, FramingLength)}
	case c.Framing != "" && m != ModeEcho:
		return &ConfigError{"Framing", c.Framing, fmt.Sprintf("only Mode %s frames its messages", ModeEcho)}
	case c.Framing == FramingLength && c.Size < lengthHeader:
		return &ConfigError{"Size", c.Size, fmt.Sprintf("must be at least %d with Framing %s", lengthHeader, FramingLength)}
	case c.Client != "" && c.Client != ClientNet && c.Client != ClientEngine:
		return &ConfigError{"Client", c.Client, fmt.Sprintf("must be %q or %q", ClientNet, ClientEngine)}
	case m != ModeEcho && c.Client == ClientEngine:
		return &ConfigError{"Client", c.Client, fmt.Sprintf("must be %q unless Mode is %s", ClientNet, ModeEcho)}
	case c.TLS && c.Client == ClientEngine:
		return &ConfigError{"Client", c.Client, fmt.Sprintf("must be %q with TLS", ClientNet)}
	}
	if network, _ := c.target(); network == "udp" {
		switch {
		case m != ModeEcho:
			return &ConfigError{"Mode", c.Mode, fmt.Sprintf("must be %s over UDP", ModeEcho)}
		case c.Client == ClientEngine || c.TLS || c.Framing != "":
			return &ConfigError{"Addr", c.Addr, fmt.Sprintf("UDP takes the %q client, without TLS or framing", ClientNet)}
		case c.Size > MaxDatagram:
			return &ConfigError{"Size", c.Size, fmt.Sprintf("must be at most %d over UDP (one datagram)", MaxDatagram)}
		}
	}
	if m != ModeEcho && c.Depth > 1 {
		return &ConfigError{"Depth", c.Depth, fmt.Sprintf("must be 0 or 1 unless Mode is %s", ModeEcho)}
	}
	return nil
}

// cancelOnly returns a context that is cancelled when ctx is done but has
// no deadline, for dialing. A dialer given ctx's deadline sets it on the
// socket, so a connect can fail with a timeout a moment before ctx.Err()
// reports the deadline, and look like the server's failure.
func cancelOnly(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	unwatch := context.AfterFunc(ctx, cancel)
	return c, func() { unwatch(); cancel() }
}
