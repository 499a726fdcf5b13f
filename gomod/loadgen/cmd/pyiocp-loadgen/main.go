// Command pyiocp-loadgen drives a TCP echo server, verifies every echoed byte
// and prints the throughput and latency figures.
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
	"time"

	"github.com/pyiocp/pyiocp/gomod/loadgen"
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
	var cfg loadgen.Config
	fs.StringVar(&cfg.Addr, "addr", "", "echo server `host:port` (required)")
	fs.IntVar(&cfg.Conns, "conns", 50, "concurrent connections")
	fs.IntVar(&cfg.Size, "size", 64, "bytes per message")
	fs.IntVar(&cfg.Depth, "depth", 1, "messages in flight per connection")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured run length")
	fs.DurationVar(&cfg.Warmup, "warmup", time.Second, "traffic before measuring starts")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", loadgen.DefaultConnectTimeout, "timeout of one connect")
	fs.DurationVar(&cfg.ReplyTimeout, "reply-timeout", loadgen.DefaultReplyTimeout, "longest wait for one echo")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	progress := fs.Bool("progress", false, "print progress to stderr every second")
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
