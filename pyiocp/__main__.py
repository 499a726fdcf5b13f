"""Command line: ``python -m pyiocp echo|bench ...`` (also the ``pyiocp`` script).

Exit codes: 0 success; 1 the run failed (bench saw errors or mismatches,
the server could not start); 2 bad arguments; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from typing import List, Optional

from . import _pyiocp
from ._handler import Handler
from ._manager import SocketManager
from .errors import BufferFull

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class EchoHandler(Handler):
    """Sends every byte back. A peer that writes far ahead of what it reads
    fills the send buffer: then reading pauses until the buffer drains, so
    the peer is slowed down by TCP instead of cut off."""

    def on_recv(self, conn, data):  # type: ignore[no-untyped-def]
        try:
            conn.send(data)
        except BufferFull:
            conn.unsent = data
            conn.pause_reading()

    def on_drain(self, conn):  # type: ignore[no-untyped-def]
        data = getattr(conn, "unsent", None)
        if data is not None:
            conn.unsent = None
            conn.send(data)
            conn.resume_reading()


def _positive(kind: type):  # type: ignore[no-untyped-def]
    def parse(text: str):  # type: ignore[no-untyped-def]
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
        return value

    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0-65535")
    return value


def cmd_echo(args: argparse.Namespace) -> int:
    def stop(signum, frame):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # A server started in the background of a script inherits SIGINT
    # ignored; it should still stop on SIGINT like on Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        mgr = SocketManager(EchoHandler(), workers=args.workers, backend=args.backend)
        lst = mgr.listen(args.host, args.port)
    except (OSError, ValueError) as exc:
        print(f"pyiocp echo: {exc}", file=sys.stderr)
        return EXIT_FAILED
    host, port = lst.address
    print(f"pyiocp echo: listening on {host}:{port} (workers={args.workers}, backend={mgr.stats()['backend']})",
          flush=True)
    try:
        mgr.serve_forever()
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    host = f"[{args.host}]" if ":" in args.host else args.host
    try:
        handle = _pyiocp.bench_start(f"{host}:{args.port}", args.conns, args.size, args.depth,
                                     int(args.duration * 1e9), int(args.warmup * 1e9))
    except ValueError as exc:
        print(f"pyiocp bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    live = sys.stderr.isatty() and not args.json
    try:
        while True:
            result = _pyiocp.bench_wait(handle, 250_000_000)
            if result is not None:
                break
            if live:
                elapsed, messages, rate = _pyiocp.bench_progress(handle)
                print(f"\r  {elapsed:5.1f} s  {messages:>12,} msgs  {rate:>12,.0f} msgs/s", end="",
                      file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        _pyiocp.bench_cancel(handle)
        while _pyiocp.bench_wait(handle, 1_000_000_000) is None:
            pass
        return EXIT_INTERRUPTED
    except OSError as exc:
        print(f"\npyiocp bench: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if live:
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    table = result.pop("table")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(table, end="" if table.endswith("\n") else "\n")
    ok = result["errors"] == 0 and result["mismatches"] == 0 and result["messages"] > 0
    return EXIT_OK if ok else EXIT_FAILED


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyiocp", description="pyiocp: an echo server and a load generator.")
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("echo", help="run an echo server until Ctrl-C or SIGTERM")
    e.add_argument("--host", default="127.0.0.1")
    e.add_argument("--port", type=_port, default=7007)
    e.add_argument("--workers", type=_positive(int), default=1)
    e.add_argument("--backend", default="auto")
    e.set_defaults(run=cmd_echo)

    b = sub.add_parser("bench", help="drive an echo server, verify every byte, print the figures")
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=_port, default=7007)
    b.add_argument("--conns", type=_positive(int), default=50, help="concurrent connections")
    b.add_argument("--size", type=_positive(int), default=64, help="bytes per message")
    b.add_argument("--depth", type=_positive(int), default=1, help="messages in flight per connection")
    b.add_argument("--duration", type=_positive(float), default=5.0, help="measured seconds")
    b.add_argument("--warmup", type=float, default=1.0, help="seconds of traffic before measuring")
    b.add_argument("--json", action="store_true", help="print the result as JSON")
    b.set_defaults(run=cmd_bench)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    if getattr(args, "warmup", 0) < 0:
        print("pyiocp bench: --warmup must not be negative", file=sys.stderr)
        return EXIT_USAGE
    started = time.monotonic()
    code = args.run(args)
    logging.getLogger("pyiocp").debug("%s took %.1f s", args.command, time.monotonic() - started)
    return code


if __name__ == "__main__":
    sys.exit(main())
