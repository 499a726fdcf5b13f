// Command pyiocp-loadgen drives a TCP echo server, verifies every echoed byte
// and prints the throughput and latency figures. -mode picks the load: echo
// (the default: pipelined echoes on steady connections), churn (connect, echo
// once, close, over and over), bulk (one long stream per connection) or idle
// (many connections that sit idle; "ready N" is printed when they are up).
// -h describes each.
//
// Exit status: 0 when echoes came back with no error and no mismatch, 1
// otherwise (including no connection and no echo at all), 2 on bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/pyiocp/pyiocp/gomod/loadgen"
)

// Defaults of bulk mode, where -bytes applies and -duration is a limit.
const (
	defaultBulkBytes    = 1 << 30
	defaultBulkDuration = 5 * time.Minute
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pyiocp-loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var cfg loadgen.Config
	fs.StringVar(&cfg.Mode, "mode", loadgen.ModeEcho, "`mode`: echo, churn, bulk or idle")
	fs.StringVar(&cfg.Addr, "addr", "", "echo server `host:port`, unix:PATH for a Unix domain socket, or udp:host:port for a UDP echo server (echo mode, net client) (required)")
	fs.IntVar(&cfg.Conns, "conns", 50, "concurrent connections (churn: goroutines)")
	fs.IntVar(&cfg.Size, "size", 64, "bytes per message (bulk: per write)")
	fs.IntVar(&cfg.Depth, "depth", 1, "messages in flight per connection (echo only)")
	fs.StringVar(&cfg.Framing, "framing", "", "`framing` of echo messages: lines (ending with \\n) or length (a 4-byte big-endian length first); none by default")
	fs.StringVar(&cfg.Client, "client", loadgen.ClientNet, "`client` of echo mode: net (a goroutine per connection) or engine (pyiocp's engine, batched)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured run length (bulk: time limit, default 5m; idle: idle time)")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "traffic before measuring starts (echo, churn)")
	fs.Var((*byteCount)(&cfg.Bytes), "bytes", "`bytes` each connection streams in bulk mode, e.g. 1073741824 or 1GiB (default 1GiB)")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", loadgen.DefaultConnectTimeout, "timeout of one connect")
	fs.DurationVar(&cfg.ReplyTimeout, "reply-timeout", loadgen.DefaultReplyTimeout, "longest wait for one echo")
	fs.BoolVar(&cfg.TLS, "tls", false, "speak TLS 1.3 (net client; a full handshake per connection, the certificate not checked)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	progress := fs.Bool("progress", false, "print progress to stderr every second (echo, churn)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pyiocp-loadgen: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if cfg.Mode == loadgen.ModeBulk {
		given := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
		if !given["bytes"] {
			cfg.Bytes = defaultBulkBytes
		}
		if !given["duration"] {
			cfg.Duration = defaultBulkDuration
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "pyiocp-loadgen:", err)
		return 2
	}
	if *progress {
		cfg.Progress = func(p loadgen.Progress) {
			phase := "run"
			if p.Warmup {
				phase = "warmup"
			}
			fmt.Fprintf(stderr, "%-6s %6.1fs %12d msgs %12.0f msgs/s\n", phase, p.Elapsed.Seconds(), p.Messages, p.MsgsPerSec)
		}
	}
	// A harness reads this line before the result: it goes out at once, as
	// writes to os.Stdout are not buffered.
	cfg.Ready = func(n int) { fmt.Fprintf(stdout, "ready %d\n", n) }

	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "pyiocp-loadgen:", err)
		return 1
	}
	if *asJSON {
		b, err := res.JSON()
		if err != nil {
			fmt.Fprintln(stderr, "pyiocp-loadgen:", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		fmt.Fprint(stdout, res.Table())
	}
	if !res.OK() {
		return 1
	}
	return 0
}

const usage = `Usage: pyiocp-loadgen -addr host:port [-mode echo|churn|bulk|idle] [flags]

  echo   -conns connections keep -depth messages of -size bytes in flight for
         -warmup + -duration; reports msgs/s, MB/s and round-trip latency.
         -client net (default) drives each connection from a goroutine on
         Go's net package; -client engine drives them all from one worker
         of pyiocp's engine, which batches their system calls.
  churn  -conns goroutines each connect, echo one -size message and close,
         over and over for -warmup + -duration; reports conns/s and the
         latency of a whole cycle (connect to verified echo).
  bulk   -conns connections each stream -bytes (default 1GiB) in writes of
         -size bytes while the echoed stream is read back and verified;
         -duration is a time limit (default 5m here); reports MB/s one way.
  idle   -conns connections each echo one -size message; then "ready N" (N
         connections up) is printed on stdout, the connections sit idle for
         -duration, and each echoes once more before it is closed.

Every echoed byte is verified. Exit status 0: no error, no mismatch;
1: otherwise; 2: bad flags.

Flags:
`

// byteCount is a flag value in bytes: an integer with an optional binary
// suffix KiB, MiB, GiB or TiB.
type byteCount int64

func (b *byteCount) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteCount) Set(s string) error {
	mult := int64(1)
	for i, suf := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if n, ok := strings.CutSuffix(s, suf); ok {
			s, mult = n, int64(1)<<(10*(i+1))
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("want an integer, optionally followed by KiB, MiB, GiB or TiB")
	}
	if n != 0 && (n*mult)/mult != n {
		return errors.New("too large")
	}
	*b = byteCount(n * mult)
	return nil
}
